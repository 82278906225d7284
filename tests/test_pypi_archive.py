"""A lock's PyPI files are archived like its conda packages (streamed, sha256 and size
checked, in the same blob store), listed in the lock's archive status per target, served
as a PEP 503 / 691 simple index, and covered by verify (re-hash and upstream drift)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import InProcessClient, InProcessService, _swap_environment
from tests.support.pypi_world import PyPIWorld
from tests.support.service import wait_for_solve

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld
) -> Iterator[InProcessService]:
    service = InProcessService(
        tmp_path_factory.mktemp("pypi-archive-service"),
        world.channels.url,
        archive="off",  # each test asks for its archive, so it can change upstream first
        archive_attempts="1",
        dedupe_window="0",
        **world.settings(),
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def api(service: InProcessService) -> Iterator[InProcessClient]:
    with service.client() as http:
        yield http


def lock_id_of(api: InProcessClient, world: PyPIWorld, *pip: str, targets: list[str]) -> str:
    body = {"environment": world.environment(*pip), "targets": targets}
    response = api.post("/api/v1/solves", json=body)
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(api, response.json()["id"])
    assert job["status"] == "succeeded", job.get("error")
    return job["lock_id"]


def archive(api: InProcessClient, lock_id: str) -> dict[str, Any]:
    response = api.post(f"/api/v1/locks/{lock_id}/archive")
    assert response.status_code in (200, 202), response.text
    status = api.get(f"/api/v1/locks/{lock_id}/archive")
    assert status.status_code == 200
    return status.json()


@pytest.fixture(scope="module")
def archived(api: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    lock_id = lock_id_of(api, world, "fast-thing", "-e .", targets=["linux-64", "osx-arm64"])
    return {"lock_id": lock_id, "status": archive(api, lock_id)}


def test_every_pypi_file_is_archived_per_target(
    archived: dict[str, Any], service: InProcessService, world: PyPIWorld
) -> None:
    status = archived["status"]
    assert status["status"] == "archived", json.dumps(status, indent=1)
    assert status["pypi"]["total"] == 3  # two platform wheels of fast-thing, one pure-dep
    assert status["pypi"]["archived"] == 3
    for target, suffix in (("linux-64", "manylinux2014_x86_64.whl"), ("osx-arm64", "arm64.whl")):
        view = status["targets"][target]
        assert view["pypi"]["archived"] == 2
        files = {p["name"]: p for p in view["pypi_packages"]}
        assert set(files) == {"fast-thing", "pure-dep"}
        assert files["fast-thing"]["filename"].endswith(suffix)
        for package in files.values():
            assert package["state"] == "archived"
            assert package["blob_sha256"] == package["sha256"]
            assert package["blob_size"] == package["size"]
            assert package["archive_url"].endswith(
                f"/pypi/files/{package['sha256']}/{package['filename']}"
            )
            # in the same content-addressed blob store as conda packages
            blob = service.data_dir / "blobs" / "sha256" / package["sha256"][:2]
            stored = blob / package["sha256"][2:4] / package["sha256"]
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == package["sha256"]


def test_simple_index_lists_archived_files_in_html_and_json(
    archived: dict[str, Any], api: InProcessClient
) -> None:
    root = api.get("/pypi/simple/")
    assert root.status_code == 200 and "text/html" in root.headers["content-type"]
    assert 'href="fast-thing/"' in root.text and 'href="pure-dep/"' in root.text
    root_json = api.get("/pypi/simple/", headers={"Accept": JSON_TYPE})
    assert root_json.headers["content-type"] == JSON_TYPE
    assert {"name": "pure-dep"} in root_json.json()["projects"]

    status = archived["status"]["targets"]
    wheels = {p["filename"]: p for t in status.values() for p in t["pypi_packages"]}
    page = api.get("/pypi/simple/fast-thing/")
    assert page.status_code == 200
    project = api.get(
        "/pypi/simple/fast-thing/", headers={"Accept": f"{JSON_TYPE}, text/html;q=0.5"}
    )
    assert project.headers["content-type"] == JSON_TYPE
    listed = {f["filename"]: f for f in project.json()["files"]}
    fast = {n: p for n, p in wheels.items() if n.startswith("fast_thing")}
    assert set(listed) == set(fast)
    for filename, package in fast.items():
        assert f"#sha256={package['sha256']}" in page.text
        assert listed[filename]["hashes"] == {"sha256": package["sha256"]}
        assert listed[filename]["size"] == package["size"]
        # relative to the project page, as PEP 503 / 691 allow
        url = str(page.url.join(listed[filename]["url"]))
        assert url.endswith(f"/pypi/files/{package['sha256']}/{filename}")
        body = api.get(url)
        assert body.status_code == 200
        assert hashlib.sha256(body.content).hexdigest() == package["sha256"]


def test_simple_index_redirects_names_that_are_not_normalised(
    archived: dict[str, Any], api: InProcessClient
) -> None:
    for path in ("/pypi/simple/Fast_Thing/", "/pypi/simple/fast.thing/", "/pypi/simple/fast-thing"):
        response = api.get(path)
        assert response.status_code == 301, path
        assert response.headers["location"] == "/pypi/simple/fast-thing/"
    assert api.get("/pypi/simple/nothing-archived/").status_code == 404
    assert api.get(f"/pypi/files/{'0' * 64}/x-1.0-py3-none-any.whl").status_code == 404


def test_pypi_archive_urls_maps_original_to_archive(
    archived: dict[str, Any], service: InProcessService
) -> None:
    from app.archive.pypi_views import pypi_archive_urls
    from app.db.session import session_scope

    service.activate()
    with session_scope() as session:
        urls = pypi_archive_urls(session, archived["lock_id"], "http://archive.example")
    files = [p for t in archived["status"]["targets"].values() for p in t["pypi_packages"]]
    assert len(urls) == 3
    for package in files:
        assert urls[package["url"]] == (
            f"http://archive.example/pypi/files/{package['sha256']}/{package['filename']}"
        )


def test_a_file_whose_bytes_changed_upstream_fails_with_both_hashes(
    api: InProcessClient, world: PyPIWorld
) -> None:
    lock_id = lock_id_of(api, world, "not-from-conda", targets=["win-64"])
    entry = world.index.file("not_from_conda-1.0-py3-none-any.whl")
    path = world.index.files_dir / entry.filename
    original = path.read_bytes()
    path.write_bytes(original + b"tampered")
    try:
        status = archive(api, lock_id)
    finally:
        path.write_bytes(original)
    assert status["status"] == "failed"
    (package,) = status["targets"]["win-64"]["pypi_packages"]
    assert package["state"] == "failed"
    assert entry.sha256 in package["reason"] and package["archive_url"] is None
    # nothing of the bad bytes is listed or served
    assert api.get("/pypi/simple/not-from-conda/").status_code == 404
    # asked again with upstream repaired, the failed file is retried and archived
    assert archive(api, lock_id)["status"] == "archived"
    assert api.get("/pypi/simple/not-from-conda/").status_code == 200


def test_a_url_outside_the_pypi_allowlist_is_refused(
    api: InProcessClient, world: PyPIWorld, service: InProcessService
) -> None:
    lock_id = lock_id_of(api, world, "uses-msgpack", targets=["win-64"])
    original = service.env["CONDARCHIVE_ALLOWED_PYPI_INDEXES"]
    service.env["CONDARCHIVE_ALLOWED_PYPI_INDEXES"] = "https://pypi.org/simple"
    _swap_environment(service.env)  # the allowlist changed after the lock was made
    try:
        status = archive(api, lock_id)
    finally:
        service.env["CONDARCHIVE_ALLOWED_PYPI_INDEXES"] = original
        _swap_environment(service.env)
    assert status["status"] == "failed"
    files = {p["name"]: p for p in status["targets"]["win-64"]["pypi_packages"]}
    for name in ("uses-msgpack", "msgpack"):
        assert files[name]["state"] == "failed"
        assert "CONDARCHIVE_ALLOWED_PYPI_INDEXES" in files[name]["reason"]
    # a file the store holds already (from an earlier lock) needs no fetch
    assert files["not-from-conda"]["state"] == "archived"


def test_verify_rehashes_pypi_blobs_and_reports_deleted_and_yanked_files(
    archived: dict[str, Any], service: InProcessService, world: PyPIWorld, tmp_path: Path
) -> None:
    from app.archive.blobs import get_store
    from app.archive.verify import run_verify
    from app.db.session import session_scope

    service.activate()
    pure = world.index.file("pure_dep-2.0-py3-none-any.whl")
    index = world.index
    original_json = index.project_json

    def yanked_json(project: str) -> dict[str, object]:
        page = original_json(project)
        for item in page["files"]:  # type: ignore[union-attr]
            if item["filename"] == pure.filename:
                item["yanked"] = "broken"
        return page

    linux_wheel = next(
        p
        for p in archived["status"]["targets"]["linux-64"]["pypi_packages"]
        if p["name"] == "fast-thing"
    )
    deleted = index.file(linux_wheel["filename"])
    index.project_json = yanked_json  # type: ignore[method-assign]
    with index._lock:
        index.files.remove(deleted)
    try:
        with session_scope() as session:
            report = run_verify(session, get_store())
    finally:
        with index._lock:
            index.files.append(deleted)
        del index.project_json
    pypi = report["pypi"]
    assert pypi["checked"] >= 3 and not pypi["corrupt"] and not pypi["missing"]
    removed = {item["filename"]: item for item in pypi["upstream"]["removed"]}
    yanked = {item["filename"]: item for item in pypi["upstream"]["yanked"]}
    assert deleted.filename in removed
    assert archived["lock_id"] in removed[deleted.filename]["locks"]
    assert pure.filename in yanked and yanked[pure.filename]["reason"] == "broken"
    assert report["summary"]["pypi_removed_upstream"] >= 1
    assert report["summary"]["pypi_yanked_upstream"] >= 1
    assert report["summary"]["ok"]  # drift is reported, not an error


def test_proxy_pypi_lists_upstream_and_archives_each_file_on_first_request(
    world: PyPIWorld, tmp_path: Path
) -> None:
    service = InProcessService(
        tmp_path / "proxy", world.channels.url, proxy_pypi=world.index.url, **world.settings()
    )
    try:
        with service.client() as proxy:
            sdist = world.index.file("sdist_only-1.0.tar.gz")
            page = proxy.get("/pypi/simple/sdist-only/", headers={"Accept": JSON_TYPE})
            assert page.status_code == 200, page.text
            (listed,) = page.json()["files"]
            assert listed["hashes"] == {"sha256": sdist.sha256}
            assert listed["url"] == f"../../files/{sdist.sha256}/{sdist.filename}"
            body = proxy.get(str(page.url.join(listed["url"])))
            assert body.status_code == 200
            assert hashlib.sha256(body.content).hexdigest() == sdist.sha256
            # a hash upstream does not list is not fetched
            assert proxy.get(f"/pypi/files/{'1' * 64}/{sdist.filename}").status_code == 404
            world.index.stop()
            try:  # upstream down: what was fetched is archived, and still listed
                html_page = proxy.get("/pypi/simple/sdist-only/")
                assert html_page.status_code == 200
                assert f"#sha256={sdist.sha256}" in html_page.text
                again = proxy.get(f"/pypi/files/{sdist.sha256}/{sdist.filename}")
                assert again.content == body.content
                assert proxy.get("/pypi/simple/pure-dep/").status_code == 502
            finally:
                world.index.start()
    finally:
        service.close()
