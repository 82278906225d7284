"""Importing conda-lock.yml (`manager: pip`) and pixi.lock (`pypi:`) files with a PyPI part:
each file's sha256 is checked against the index that lists it, and the lock gets the
same PyPI packages back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from tests.support.inprocess import InProcessClient
from tests.support.pypi_world import PyPIWorld, lock_of

TARGETS = ["linux-64", "osx-arm64"]
FILES = {"conda-lock": "conda-lock.yml", "pixi": "pixi.lock"}


@pytest.fixture(scope="module")
def lock(pypi_api: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    environment = world.environment(
        "fast-thing", "uses-msgpack==1.0", conda=("python=3.12", "msgpack-python")
    )
    return lock_of(pypi_api, {"environment": environment, "targets": TARGETS})


def exported(api: InProcessClient, lock_id: str, fmt: str) -> str:
    response = api.get(f"/l/{lock_id}/{FILES[fmt]}")
    assert response.status_code == 200, response.text
    return response.text


def post(api: InProcessClient, content: str) -> httpx.Response:
    return api.post("/api/v1/locks/import", json={"content": content})


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_export_then_import_gives_the_same_pypi_packages(
    pypi_api: InProcessClient, lock: dict[str, Any], fmt: str
) -> None:
    response = post(pypi_api, exported(pypi_api, lock["id"], fmt))
    assert response.status_code in (200, 201), response.text
    imported = pypi_api.get(f"/api/v1/locks/{response.json()['lock_id']}").json()
    for name, target in lock["targets"].items():
        assert imported["targets"][name]["pypi_packages"] == target["pypi_packages"]
        assert imported["targets"][name]["packages"] == target["packages"]
    # every field the lock hashes came back, so it is the same lock
    assert response.json()["lock_id"] == lock["id"]
    provenance = imported["provenance"]
    if "imported" in provenance:  # the first request made it: the solve, not this import
        assert provenance["pypi"]["sha256_checked"] == sum(
            len(t["pypi_packages"]) for t in lock["targets"].values()
        )
    requests = pypi_api.get(f"/api/v1/locks/{lock['id']}/requests").json()["items"]
    assert any(r["kind"] == "import" and r["submitted"]["format"] == fmt for r in requests)


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_a_tampered_sha256_is_a_422_naming_the_line(
    pypi_api: InProcessClient, lock: dict[str, Any], fmt: str
) -> None:
    text = exported(pypi_api, lock["id"], fmt)
    package = lock["targets"]["linux-64"]["pypi_packages"][0]
    tampered = text.replace(package["sha256"], "ab" * 32)
    response = post(pypi_api, tampered)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    wrong = next(d for d in details if package["filename"] in d["msg"])
    assert package["sha256"] in wrong["msg"] and "ab" * 32 in wrong["msg"]
    # the line is where the entry starts: its URL and the tampered hash follow
    lines = tampered.splitlines()
    entry = lines[wrong["line"] - 1 : line_of(tampered, "ab" * 32)]
    assert entry[0].lstrip().startswith("- ")
    assert package["url"] in "\n".join(entry)


def test_a_pip_file_outside_the_allowed_indexes_is_refused(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    text = exported(pypi_api, lock["id"], "conda-lock")
    package = lock["targets"]["linux-64"]["pypi_packages"][0]
    moved = text.replace(package["url"], f"https://evil.example/files/{package['filename']}")
    response = post(pypi_api, moved)
    assert response.status_code == 422, response.text
    message = " ".join(d["msg"] for d in response.json()["detail"])
    assert "CONDARCHIVE_ALLOWED_PYPI_INDEXES" in message


def test_a_file_the_index_does_not_list_is_refused(
    pypi_api: InProcessClient, lock: dict[str, Any], world: PyPIWorld
) -> None:
    text = exported(pypi_api, lock["id"], "pixi")
    package = lock["targets"]["osx-arm64"]["pypi_packages"][0]
    renamed = package["url"].replace(package["filename"], "nothing-1.0-py3-none-any.whl")
    response = post(pypi_api, text.replace(package["url"], renamed))
    assert response.status_code == 422, response.text
    message = " ".join(d["msg"] for d in response.json()["detail"])
    assert "is not listed by" in message and world.index.url in message


def test_a_pip_entry_without_sha256_is_refused(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    text = exported(pypi_api, lock["id"], "conda-lock")
    package = lock["targets"]["linux-64"]["pypi_packages"][0]
    stripped = text.replace(f"sha256: {package['sha256']}", "md5: 0123")
    response = post(pypi_api, stripped)
    assert response.status_code == 422, response.text
    assert any("has no sha256" in d["msg"] for d in response.json()["detail"])


def test_a_version_that_would_inject_requirement_lines_is_refused(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    """A hostile conda-lock.yml whose pip version carries a line break and options: had it
    been stored, `requirements.txt` and `condarchive install` would hand them to pip/uv."""
    document = yaml.safe_load(exported(pypi_api, lock["id"], "conda-lock"))
    entry = next(p for p in document["package"] if p["manager"] == "pip")
    entry["version"] = "1.0 --hash=sha256:00\n--find-links https://evil.example/"
    hostile = yaml.safe_dump(document, sort_keys=False)
    response = post(pypi_api, hostile)
    assert response.status_code == 422, response.text
    message = " ".join(d["msg"] for d in response.json()["detail"])
    assert "not a PEP 440 version" in message
