"""`/l/{id}/sbom/{target}.cdx.json`: a CycloneDX 1.6 SBOM that CycloneDX's own library
validates, with a component (purl, hashes, licence) per conda and PyPI package and the
dependency graph; byte-stable across requests and across a restart of the service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import PyPIWorld
from tests.support.solving import solve_environment, solve_lock


def validate(body: bytes) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(body.decode())
    assert errors is None, errors


@pytest.fixture(scope="module")
def conda_lock(api: InProcessClient, channel_url: str) -> str:
    return solve_lock(api, channel_url, ["numlib<1.26", "timely"], ["linux-64", "osx-arm64"])


def sbom(api: InProcessClient, lock_id: str, target: str) -> tuple[bytes, dict[str, Any]]:
    response = api.get(f"/l/{lock_id}/sbom/{target}.cdx.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    return response.content, response.json()


def test_conda_sbom_validates_and_names_every_package(
    api: InProcessClient, conda_lock: str, channel_url: str
) -> None:
    body, bom = sbom(api, conda_lock, "linux-64")
    validate(body)
    lock = api.get(f"/api/v1/locks/{conda_lock}").json()
    packages = {p["name"]: p for p in lock["targets"]["linux-64"]["packages"]}
    assert bom["specVersion"] == "1.6" and bom["bomFormat"] == "CycloneDX"
    assert bom["serialNumber"] == uuid.UUID(bom["serialNumber"][9:]).urn
    assert bom["metadata"]["timestamp"] == lock["created_at"]
    components = {c["name"]: c for c in bom["components"]}
    assert set(components) == set(packages) == {"numlib", "libfoo", "timely"}
    assert [c["bom-ref"] for c in bom["components"]] == sorted(
        components[n]["bom-ref"] for n in components
    )
    for name, package in packages.items():
        component = components[name]
        parsed = PackageURL.from_string(component["purl"])
        # the purl is written in its canonical form, as packageurl-python writes it
        assert parsed.to_string() == component["purl"]
        assert (parsed.type, parsed.name, parsed.version) == ("conda", name, package["version"])
        kind = "tar.bz2" if package["filename"].endswith(".tar.bz2") else "conda"
        assert parsed.qualifiers == {
            "build": package["build"],
            "channel": channel_url,
            "subdir": package["subdir"],
            "type": kind,
        }
        hashes = {h["alg"]: h["content"] for h in component["hashes"]}
        assert hashes == {"SHA-256": package["sha256"], "MD5": package["md5"]}
        assert component["licenses"] == [
            {"license": {"name": "BSD-3-Clause", "acknowledgement": "declared"}}
        ]
        assert component["externalReferences"][0]["url"] == package["url"]
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    ref = {name: c["bom-ref"] for name, c in components.items()}
    assert graph[ref["numlib"]] == [ref["libfoo"]]
    assert graph[ref["libfoo"]] == [] and graph[ref["timely"]] == []
    subject = bom["metadata"]["component"]["bom-ref"]
    assert graph[subject] == sorted([ref["numlib"], ref["timely"]])
    assert bom["metadata"]["component"]["externalReferences"][0]["url"].endswith(f"/l/{conda_lock}")


def test_sbom_is_byte_stable_and_served_with_a_strong_etag(
    api: InProcessClient, conda_lock: str
) -> None:
    path = f"/l/{conda_lock}/sbom/osx-arm64.cdx.json"
    first, second = api.get(path), api.get(path)
    assert first.content == second.content
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert api.head(path).headers["etag"] == etag
    other = api.get(f"/l/{conda_lock}/sbom/linux-64.cdx.json").json()
    assert other["serialNumber"] != first.json()["serialNumber"]


def test_sbom_prefix_redirects_and_unknown_target_lists_the_choices(
    api: InProcessClient, conda_lock: str
) -> None:
    short = api.get(f"/l/{conda_lock[:12]}/sbom/linux-64.cdx.json")
    assert short.status_code == 307
    assert short.headers["location"] == f"/l/{conda_lock}/sbom/linux-64.cdx.json"
    unknown = api.get(
        f"/l/{conda_lock}/sbom/win-64.cdx.json", headers={"Accept": "application/json"}
    )
    assert unknown.status_code == 404
    assert "linux-64" in unknown.json()["detail"]
    assert set(unknown.json()["links"]) == {"linux-64", "osx-arm64"}
    assert api.get(f"/l/{'0' * 64}/sbom/linux-64.cdx.json").status_code == 404


# --- a lock with a PyPI part -------------------------------------------------------------

#: The same links before and after a restart (an in-process service's port is random).
PUBLIC_URL = "https://archive.example.org"


@pytest.fixture(scope="module")
def pypi_service(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld
) -> Iterator[InProcessService]:
    service = InProcessService(
        tmp_path_factory.mktemp("sbom-pypi-service"),
        world.channels.url,
        public_url=PUBLIC_URL,
        **world.settings(),
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def pypi_lock(pypi_service: InProcessService, world: PyPIWorld) -> str:
    environment = world.environment(
        "fast-thing", "uses-msgpack==1.0", "-e .", conda=("python=3.12", "msgpack-python")
    )
    with pypi_service.client() as http:
        return solve_environment(http, environment, ["linux-64"])


def test_pypi_packages_are_components_with_their_requirements_as_edges(
    pypi_service: InProcessService, pypi_lock: str
) -> None:
    with pypi_service.client() as http:
        body, bom = sbom(http, pypi_lock, "linux-64")
        lock = http.get(f"/api/v1/locks/{pypi_lock}").json()
    validate(body)
    target = lock["targets"]["linux-64"]
    components = {c["purl"]: c for c in bom["components"]}
    for package in target["pypi_packages"]:
        ref = f"pkg:pypi/{package['name']}@{package['version']}"
        component = components[ref]
        assert component["hashes"] == [{"alg": "SHA-256", "content": package["sha256"]}]
        assert component["externalReferences"][0]["url"] == package["url"]
    assert len(bom["components"]) == len(target["packages"]) + len(target["pypi_packages"])
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    conda = {p["name"]: p for p in target["packages"]}
    msgpack = next(c["bom-ref"] for c in bom["components"] if c["name"] == "msgpack-python")
    python = next(c["bom-ref"] for c in bom["components"] if c["name"] == "python")
    assert conda["msgpack-python"]["depends"] == ["python"]
    assert graph[msgpack] == [python]
    assert graph["pkg:pypi/fast-thing@1.0"] == ["pkg:pypi/pure-dep@2.0"]
    # uses-msgpack requires msgpack, which conda's msgpack-python provides
    assert graph["pkg:pypi/uses-msgpack@1.0"] == [msgpack]
    local = [p for p in bom["metadata"]["properties"] if p["name"] == "condarchive:pypi_local"]
    assert local == [{"name": "condarchive:pypi_local", "value": "-e ."}]


def test_sbom_bytes_survive_a_restart(
    pypi_service: InProcessService, pypi_lock: str, world: PyPIWorld
) -> None:
    with pypi_service.client() as http:
        before = http.get(f"/l/{pypi_lock}/sbom/linux-64.cdx.json").content
    # a new service (app, engine, caches) on the same data directory
    again = InProcessService(
        pypi_service.workdir, world.channels.url, public_url=PUBLIC_URL, **world.settings()
    )
    try:
        with again.client() as http:
            after = http.get(f"/l/{pypi_lock}/sbom/linux-64.cdx.json").content
    finally:
        again.close()
    assert after == before
    assert json.loads(after)["serialNumber"] == json.loads(before)["serialNumber"]
