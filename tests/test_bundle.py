"""`/l/{id}/bundle/{target}.tar`: one target's archived files as a conda channel (and its
PyPI files as a simple index), with the lock, the explicit and requirements files and the
citation; streamed, byte-identical on every request, and installable with plain
py-rattler from the unpacked tar with every server stopped."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.archive import prefix_records, solve_and_install, wait_archive
from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import PyPIWorld
from tests.support.service import wait_for_solve


@pytest.fixture(scope="module")
def archiving(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld
) -> Iterator[InProcessClient]:
    service = InProcessService(
        tmp_path_factory.mktemp("bundle-service"),
        world.channels.url,
        archive="auto",
        **world.settings(),
    )
    with service.client() as http:
        yield http
    service.close()


def lock(http: InProcessClient, environment: str, targets: list[str]) -> str:
    response = http.post("/api/v1/solves", json={"environment": environment, "targets": targets})
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(http, response.json()["id"])
    assert job["status"] == "succeeded", job.get("error")
    return job["lock_id"]


@pytest.fixture(scope="module")
def archived(archiving: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    environment = world.environment("fast-thing", "-e .", conda=("python=3.12", "msgpack-python"))
    lock_id = lock(archiving, environment, ["linux-64"])
    status = wait_archive(archiving, lock_id)
    assert status["status"] == "archived", status
    return archiving.get(f"/api/v1/locks/{lock_id}").json()


def members(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        found = {}
        for member in tar.getmembers():
            assert member.isfile() and member.uid == 0 and member.mode == 0o644
            handle = tar.extractfile(member)
            assert handle is not None
            found[member.name] = handle.read()
        return found


def test_bundle_holds_the_target_and_is_byte_stable(
    archiving: InProcessClient, archived: dict[str, Any]
) -> None:
    lock_id = archived["id"]
    url = f"/l/{lock_id}/bundle/linux-64.tar"
    first = archiving.get(url)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/x-tar"
    assert int(first.headers["content-length"]) == len(first.content)
    second = archiving.get(url)
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert archiving.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    head = archiving.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(first.content))

    files = members(first.content)
    root = f"condarchive-{lock_id[:12]}-linux-64"
    assert all(name.startswith(root + "/") for name in files)
    target = archived["targets"]["linux-64"]
    for package in target["packages"]:
        data = files[f"{root}/channel/{package['subdir']}/{package['filename']}"]
        assert hashlib.sha256(data).hexdigest() == package["sha256"]
    for package in target["pypi_packages"]:
        data = files[f"{root}/pypi/files/{package['filename']}"]
        assert hashlib.sha256(data).hexdigest() == package["sha256"]
        project = files[f"{root}/pypi/simple/{package['name']}/index.html"].decode()
        assert f"#sha256={package['sha256']}" in project
    assert json.loads(files[f"{root}/lock.json"])["id"] == lock_id
    assert b"cff-version" in files[f"{root}/CITATION.cff"]
    explicit = files[f"{root}/explicit.txt"].decode()
    assert "@EXPLICIT" in explicit and "./channel/linux-64/python-3.12.4" in explicit
    requirements = files[f"{root}/requirements.txt"].decode()
    assert "--find-links ./pypi/files" in requirements
    assert "fast-thing==1.0 --hash=sha256:" in requirements
    for subdir in ("linux-64", "noarch"):
        json.loads(files[f"{root}/channel/{subdir}/repodata.json"])
    assert "condarchive install --bundle" in files[f"{root}/README.md"].decode()


def test_plain_rattler_installs_the_bundles_channel_offline(
    archiving: InProcessClient, archived: dict[str, Any], world: PyPIWorld, tmp_path: Path
) -> None:
    body = archiving.get(f"/l/{archived['id']}/bundle/linux-64.tar").content
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (root,) = (tmp_path / "unpacked").iterdir()
    world.channels.stop()  # nothing upstream from here on
    try:
        prefix = tmp_path / "env"
        channel = (root / "channel").as_uri()
        solve_and_install(channel, ["python=3.12", "msgpack-python"], prefix, tmp_path / "cache")
    finally:
        world.channels.start()
    installed = prefix_records(prefix)
    assert set(installed) == {p["name"] for p in archived["targets"]["linux-64"]["packages"]}


def test_bundle_of_a_lock_not_archived_is_409_naming_files(
    tmp_path: Path, world: PyPIWorld
) -> None:
    service = InProcessService(tmp_path, world.channels.url, **world.settings())  # archive off
    try:
        with service.client() as http:
            lock_id = lock(http, world.environment(), ["win-64"])
            response = http.get(
                f"/l/{lock_id}/bundle/win-64.tar", headers={"Accept": "application/json"}
            )
            assert response.status_code == 409
            assert "python-3.12.4" in response.text
            other = http.get(f"/l/{lock_id}/bundle/linux-64.tar")
            assert other.status_code == 404
    finally:
        service.close()
