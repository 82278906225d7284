"""Every lockfile format, rendered by the running service and read by its own reader.

conda-lock's parser (from PyPI) reads conda-lock.yml, py-rattler reads pixi.lock, and
py-rattler installs the explicit file into a prefix from the local test channel. Renders
are byte-identical on every request and across a restart of the service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import rattler
import yaml

from app.locks.formats import CannotExpress, UnknownTarget, formats_for, render
from app.locks.formats.base import topological
from tests.conftest import start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.explicit import explicit_records
from tests.support.service import Service
from tests.support.solving import solve_lock

TWO_PLATFORMS = ["linux-64", "osx-arm64"]
WITH_CUDA = ["linux-64", "linux-64-cuda12", "osx-arm64"]
SPEC = ["numlib>=1.20,<2", "pyutil", "torchlike"]


@pytest.fixture(scope="module")
def http(api: httpx.Client) -> httpx.Client:
    """The in-process service (tests/support/inprocess.py)."""
    return api


@pytest.fixture(scope="module")
def lock_id(http: httpx.Client, channel_url: str) -> str:
    """One target per platform: every format can express it."""
    return solve_lock(http, channel_url, SPEC, TWO_PLATFORMS)


@pytest.fixture(scope="module")
def cuda_lock_id(http: httpx.Client, channel_url: str) -> str:
    """Two targets of linux-64 (CPU and CUDA 12): conda-lock v1 cannot hold it."""
    return solve_lock(http, channel_url, SPEC, WITH_CUDA)


def lock_json(http: httpx.Client, lock_id: str) -> dict[str, Any]:
    response = http.get(f"/l/{lock_id}.json")
    assert response.status_code == 200, response.text
    return response.json()


def download(http: httpx.Client, path: str) -> bytes:
    response = http.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.content


# --- conda-lock.yml -------------------------------------------------------------------


def test_conda_lock_yml_is_read_by_conda_locks_own_parser(
    http: httpx.Client, lock_id: str, tmp_path: Path
) -> None:
    from conda_lock.lockfile import parse_conda_lock_file
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1

    body = download(http, f"/l/{lock_id}/conda-lock.yml")
    path = tmp_path / "conda-lock.yml"
    path.write_bytes(body)

    content = yaml.safe_load(body)
    assert content.pop("version") == 1
    LockfileV1.model_validate(content)  # the v1 schema itself, strict models
    parsed = parse_conda_lock_file(path)  # what `conda-lock install` runs

    lock = lock_json(http, lock_id)
    assert sorted(parsed.metadata.platforms) == TWO_PLATFORMS
    assert [c.url for c in parsed.metadata.channels] == lock["spec"]["channels"]
    got = {(p.name, p.platform, p.url, p.hash.md5, p.hash.sha256) for p in parsed.package}
    expected = {
        (p["name"], t["platform"], p["url"], p["md5"], p["sha256"])
        for t in lock["targets"].values()
        for p in t["packages"]
    }
    assert got == expected
    numlib = next(p for p in parsed.package if p.name == "numlib" and p.platform == "linux-64")
    assert numlib.dependencies == {"libfoo": ">=1.1"}
    assert all(p.manager == "conda" and p.categories == {"main"} for p in parsed.package)


def test_conda_lock_refuses_two_targets_of_one_platform(
    http: httpx.Client, cuda_lock_id: str
) -> None:
    response = http.get(f"/l/{cuda_lock_id}/conda-lock.yml", headers={"Accept": "application/json"})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "linux-64-cuda12" in detail and "linux-64" in detail
    assert "pixi" in detail and "explicit" in detail and "env" in detail
    assert "conda-lock" not in detail.split("Formats that can express it:")[1]
    page = http.get(f"/l/{cuda_lock_id}/conda-lock.yml")
    assert page.status_code == 409 and "text/html" in page.headers["content-type"]
    assert f"/l/{cuda_lock_id}/pixi.lock" in page.text


# --- pixi.lock ------------------------------------------------------------------------


def test_pixi_lock_is_read_back_by_py_rattler(
    http: httpx.Client, cuda_lock_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "pixi.lock"
    path.write_bytes(download(http, f"/l/{cuda_lock_id}/pixi.lock"))
    lockfile = rattler.LockFile.from_path(path)
    lock = lock_json(http, cuda_lock_id)

    env = lockfile.default_environment()
    assert env is not None
    assert [str(c) for c in env.channels()] == [c + "/" for c in lock["spec"]["channels"]]
    platforms = {p.name: p for p in env.platforms()}
    assert set(platforms) == set(WITH_CUDA)
    for name, target in lock["targets"].items():
        platform = platforms[name]
        assert str(platform.subdir) == target["platform"]
        assert sorted(platform.virtual_packages) == target["virtual_packages"]
        records = env.conda_repodata_records_for_platform(platform)
        got = {(r.url, r.md5.hex(), r.sha256.hex(), r.size, tuple(r.depends)) for r in records}
        expected = {
            (p["url"], p["md5"], p["sha256"], p["size"], tuple(p["depends"]))
            for p in target["packages"]
        }
        assert got == expected, name
    assert "__cuda=12=0" in platforms["linux-64-cuda12"].virtual_packages
    cuda = {r.name.normalized: r for r in env.conda_repodata_records()["linux-64-cuda12"]}
    assert str(cuda["torchlike"].build) == "cuda124_1"


# --- explicit -------------------------------------------------------------------------


def test_explicit_file_installs_with_py_rattler(
    http: httpx.Client, cuda_lock_id: str, tmp_path: Path
) -> None:
    text = download(http, f"/l/{cuda_lock_id}/explicit/linux-64-cuda12.txt").decode()
    lines = text.splitlines()
    assert "@EXPLICIT" in lines and "# platform: linux-64" in lines
    urls = [line for line in lines if line.startswith("http")]
    lock = lock_json(http, cuda_lock_id)
    packages = lock["targets"]["linux-64-cuda12"]["packages"]
    assert sorted(urls) == sorted(f"{p['url']}#{p['md5']}" for p in packages)
    names = [u.rsplit("/", 1)[1].rsplit("-", 2)[0] for u in urls]
    assert names.index("libfoo") < names.index("numlib")  # dependencies first

    prefix = tmp_path / "env"
    records = explicit_records(text)
    asyncio.run(
        rattler.install(
            records,
            prefix,
            cache_dir=tmp_path / "pkgs",
            platform=rattler.Subdir("linux-64"),
            show_progress=False,
        )
    )
    installed = {p.name for p in (prefix / "conda-meta").glob("*.json")}
    assert installed == {f"{p['name']}-{p['version']}-{p['build']}.json" for p in packages}
    assert (
        (prefix / "share/torchlike/torchlike-2.5.0-cuda124_1.txt")
        .read_text()
        .startswith("torchlike 2.5.0 cuda124_1")
    )


def test_explicit_md5_is_enforced_by_the_installer(
    http: httpx.Client, lock_id: str, tmp_path: Path
) -> None:
    text = download(http, f"/l/{lock_id}/explicit/linux-64.txt").decode()
    line = next(ln for ln in text.splitlines() if "/numlib-" in ln)
    tampered = text.replace(line, line.split("#")[0] + "#" + "0" * 32).replace(
        "# sha256:", "# was sha256:"
    )
    with pytest.raises(Exception, match="hash mismatch"):
        asyncio.run(
            rattler.install(
                explicit_records(tampered),
                tmp_path / "env",
                cache_dir=tmp_path / "pkgs",
                platform=rattler.Subdir("linux-64"),
                show_progress=False,
            )
        )


# --- environment.yml ------------------------------------------------------------------


def test_environment_yml_pins_every_package_per_target(
    http: httpx.Client, cuda_lock_id: str
) -> None:
    lock = lock_json(http, cuda_lock_id)
    for name, target in lock["targets"].items():
        body = download(http, f"/l/{cuda_lock_id}/environment.yml?target={name}")
        env = yaml.safe_load(body)
        assert env["channels"] == [*lock["spec"]["channels"], "nodefaults"]
        pins = sorted(f"{p['name']}={p['version']}={p['build']}" for p in target["packages"])
        assert sorted(env["dependencies"]) == pins
        for pin in env["dependencies"]:
            spec = rattler.MatchSpec(pin)  # conda's own reading of name=version=build
            package = next(p for p in target["packages"] if p["name"] == spec.name.normalized)
            assert str(spec.build) == package["build"]
        assert f"target {name} ({target['platform']})" in body.decode().splitlines()[0]


def test_environment_yml_needs_a_target_when_there_are_several(
    http: httpx.Client, cuda_lock_id: str
) -> None:
    response = http.get(
        f"/l/{cuda_lock_id}/environment.yml", headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    assert "linux-64-cuda12" in response.json()["detail"]
    missing = http.get(f"/l/{cuda_lock_id}/environment.yml?target=win-64")
    assert missing.status_code == 404 and "osx-arm64" in missing.text
    explicit = http.get(f"/l/{cuda_lock_id}/explicit/win-64.txt")
    assert explicit.status_code == 404


# --- immutability ---------------------------------------------------------------------


def format_paths(lock_id: str, targets: list[str]) -> list[str]:
    paths = [f"/l/{lock_id}.json", f"/l/{lock_id}/pixi.lock"]
    for target in targets:
        paths += [
            f"/l/{lock_id}/explicit/{target}.txt",
            f"/l/{lock_id}/environment.yml?target={target}",
        ]
    return paths


def test_renders_are_identical_cacheable_and_conditional(http: httpx.Client, lock_id: str) -> None:
    for path in [*format_paths(lock_id, TWO_PLATFORMS), f"/l/{lock_id}/conda-lock.yml"]:
        first, second = http.get(path), http.get(path)
        assert first.status_code == second.status_code == 200, path
        assert first.content == second.content, path
        etag = first.headers["etag"]
        assert etag == second.headers["etag"] and not etag.startswith("W/"), path
        cache_control = first.headers["cache-control"]
        assert "public" in cache_control and "immutable" in cache_control, path
        assert "max-age=" in cache_control, path
        again = http.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == etag
        other = http.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status_code == 200


@pytest.mark.process
def test_renders_are_byte_identical_across_a_restart(
    tmp_path: Path, channel_server: ChannelServer, channel_url: str
) -> None:
    """Start a service on its own data dir, render, stop; start again on that dir, render."""

    def render_all(service: Service, lock_id: str | None) -> tuple[str, dict[str, bytes]]:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            if lock_id is None:
                lock_id = solve_lock(client, channel_url, SPEC, WITH_CUDA)
            single = solve_lock(client, channel_url, ["pyutil"], ["linux-64"])
            paths = format_paths(lock_id, WITH_CUDA) + [
                f"/l/{single}/conda-lock.yml",
                f"/l/{single}/environment.yml",
            ]
            return lock_id, {path: download(client, path) for path in paths}

    first = start_service(tmp_path / "svc", channel_server.url)
    try:
        lock_id, before = render_all(first, None)
    finally:
        stop_service(first)
    second = start_service(tmp_path / "svc", channel_server.url)
    try:
        _, after = render_all(second, lock_id)
    finally:
        stop_service(second)
    assert before.keys() == after.keys()
    for path in before:
        assert before[path] == after[path], path


# --- the renderers as pure functions --------------------------------------------------


def synthetic_lock(targets: dict[str, str]) -> dict[str, Any]:
    def package(name: str, depends: list[str], subdir: str) -> dict[str, Any]:
        channel = "https://example.org/chan"
        filename = f"{name}-1.0-0.conda"
        return {
            "name": name,
            "version": "1.0",
            "build": "0",
            "build_number": 0,
            "channel": channel,
            "subdir": subdir,
            "url": f"{channel}/{subdir}/{filename}",
            "filename": filename,
            "sha256": "a" * 64,
            "md5": "b" * 32,
            "size": 10,
            "depends": depends,
        }

    return {
        "id": "c" * 64,
        "created_at": "2025-01-02T03:04:05Z",
        "spec": {"channels": ["https://example.org/chan"], "name": "demo", "submitted": {}},
        "provenance": {},
        "targets": {
            name: {
                "platform": platform,
                "virtual_packages": ["__glibc=2.17=0"],
                "packages": [
                    package("app", ["lib >=1", "__glibc >=2.17"], platform),
                    package("zlib", [], platform),
                    package("lib", ["zlib"], "noarch"),
                ],
            }
            for name, platform in targets.items()
        },
    }


def test_every_format_is_a_pure_function_of_the_lock() -> None:
    lock = synthetic_lock({"linux-64": "linux-64", "osx-64": "osx-64"})
    for fmt, target in (("explicit", "linux-64"), ("conda-lock", None), ("pixi", None)):
        assert render(fmt, lock, target) == render(fmt, lock, target)
    assert render("env", lock, "osx-64") == render("env", lock, "osx-64")
    assert formats_for(lock) == ["explicit", "conda-lock", "pixi", "env"]

    two = synthetic_lock({"gpu": "linux-64", "cpu": "linux-64"})
    assert "conda-lock" not in formats_for(two)
    with pytest.raises(CannotExpress, match="'cpu' and 'gpu' are both linux-64"):
        render("conda-lock", two)
    with pytest.raises(UnknownTarget, match="name one of: cpu, gpu"):
        render("env", two, None)


def test_explicit_lists_dependencies_before_dependents() -> None:
    lock = synthetic_lock({"linux-64": "linux-64"})
    order = [p["name"] for p in topological(lock["targets"]["linux-64"]["packages"])]
    assert order == ["zlib", "lib", "app"]
    cyclic = [
        {"name": "a", "url": "u/a", "depends": ["b"]},
        {"name": "b", "url": "u/b", "depends": ["a"]},
    ]
    assert sorted(p["name"] for p in topological(cyclic)) == ["a", "b"]
