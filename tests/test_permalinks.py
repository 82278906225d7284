"""`/l/{id}`: pages, JSON, prefixes, 404s, escaping, caching; and finding locks."""

from __future__ import annotations

import html
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import sessionmaker

from app.db.models import Lock
from app.db.session import make_engine
from tests.support.channel_server import ChannelServer
from tests.support.inprocess import InProcessService
from tests.support.service import Service
from tests.support.solving import solve_environment, solve_lock

JSON = {"Accept": "application/json"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def http(api: httpx.Client) -> httpx.Client:
    """The in-process service (tests/support/inprocess.py)."""
    return api


@pytest.fixture(scope="module")
def lock_id(http: httpx.Client, channel_url: str) -> str:
    return solve_lock(http, channel_url, ["torchlike", "pyutil"], ["linux-64", "osx-arm64"])


def test_page_shows_the_lock(http: httpx.Client, lock_id: str, inprocess: InProcessService) -> None:
    response = http.get(f"/l/{lock_id}", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["vary"] == "Accept"
    assert response.headers["etag"].startswith('"')
    page = response.text
    lock = http.get(f"/api/v1/locks/{lock_id}").json()
    for target in lock["targets"].values():
        for package in target["packages"]:
            assert package["sha256"] in page
            assert package["build"] in page
    permalink = f"{inprocess.url}/l/{lock_id}"
    text = html.unescape(page)
    assert f"--file '{permalink}/explicit/linux-64.txt'" in text  # conda
    assert "micromamba create" in page and "pixi install --frozen" in page
    assert "@misc{condarchive_" in page and "cff-version: 1.2.0" in page
    assert lock["created_at"] in page and lock["created_at"][:10] in page
    assert "torchlike" in page and "numlib" not in page  # the spec as submitted
    assert_revalidates(http, f"/l/{lock_id}")


def assert_revalidates(http: httpx.Client, path: str) -> None:
    """The page's ETag gets a 304. The page shows archive status, which changes
    while the archive runs, so a changed page may answer 200 a few times first."""
    for _ in range(50):
        etag = http.get(path, headers=BROWSER).headers["etag"]
        again = http.get(path, headers={**BROWSER, "If-None-Match": etag})
        if again.status_code == 304:
            assert again.content == b"" and again.headers["etag"] == etag
            return
        assert again.status_code == 200 and again.headers["etag"] != etag
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered 304")


def test_json_by_suffix_and_by_accept_header(http: httpx.Client, lock_id: str) -> None:
    by_suffix = http.get(f"/l/{lock_id}.json")
    by_accept = http.get(f"/l/{lock_id}", headers=JSON)
    assert by_suffix.status_code == by_accept.status_code == 200
    assert by_accept.headers["content-type"] == "application/json"
    assert by_suffix.content == by_accept.content
    assert "immutable" in by_suffix.headers["cache-control"]
    assert by_accept.headers["vary"] == "Accept"
    document, api = by_suffix.json(), http.get(f"/api/v1/locks/{lock_id}").json()
    assert document["id"] == api["id"] == lock_id
    assert document["spec"] == api["spec"] and document["provenance"] == api["provenance"]
    for name, target in api["targets"].items():
        mine = document["targets"][name]
        assert [p["url"] for p in mine["packages"]] == [p["url"] for p in target["packages"]]
        for extra, package in zip(mine["packages"], target["packages"], strict=True):
            assert {k: extra[k] for k in package} == package  # a superset of the API view
            assert "timestamp" in extra  # record fields lockfiles carry


def test_unique_prefix_redirects_to_the_full_id(http: httpx.Client, lock_id: str) -> None:
    for suffix in ("", ".json", "/pixi.lock", "/explicit/linux-64.txt"):
        response = http.get(f"/l/{lock_id[:10]}{suffix}")
        assert response.status_code == 307, suffix
        assert response.headers["location"] == f"/l/{lock_id}{suffix}"
        assert "no-cache" in response.headers["cache-control"]
    query = http.get(f"/l/{lock_id[:8]}/environment.yml?target=osx-arm64")
    assert query.headers["location"] == f"/l/{lock_id}/environment.yml?target=osx-arm64"
    followed = http.get(f"/l/{lock_id[:8].upper()}", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url).endswith(lock_id)


@pytest.mark.parametrize(
    "path",
    [
        "/l/" + "0" * 64,
        "/l/00000000",
        "/l/1234567",  # too short to be a prefix
        "/l/not-a-lock",
        "/l/" + "0" * 64 + ".json",
        "/l/" + "0" * 64 + "/pixi.lock",
        "/l/" + "0" * 64 + "/conda-lock.yml",
        "/l/" + "0" * 64 + "/explicit/linux-64.txt",
        "/l/" + "0" * 64 + "/environment.yml?target=linux-64",
        "/l/" + "0" * 64 + "/diff/" + "1" * 64,
    ],
)
def test_unknown_ids_get_a_404_page(http: httpx.Client, path: str) -> None:
    page = http.get(path, headers=BROWSER)
    assert page.status_code == 404, page.text
    assert "text/html" in page.headers["content-type"]
    assert "Lock not found" in page.text
    as_json = http.get(path, headers=JSON)
    assert as_json.status_code == 404 and "no lock" in as_json.json()["detail"]


def test_user_text_is_escaped(http: httpx.Client, channel_url: str) -> None:
    environment = (
        'name: <script>alert("name")</script>\n'
        f"channels:\n  - {channel_url}\n"
        "dependencies:\n  - timely  # <script>alert('spec')</script>\n"
    )
    lock_id = solve_environment(http, environment, [{"name": "xss-check", "platform": "linux-64"}])
    page = http.get(f"/l/{lock_id}").text
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in page  # the name
    assert "&lt;script&gt;alert(&#39;spec&#39;)&lt;/script&gt;" in page  # the spec text
    hostile = http.get("/l/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert hostile.status_code == 404 and "<script" not in hostile.text
    # The name is the request's, not the lock's: environment.yml carries it when rendered
    # for the job that gave it.
    (asked,) = http.get(f"/api/v1/locks/{lock_id}/requests").json()["items"]
    env = http.get(f"/l/{lock_id}/environment.yml?job={asked['job_id']}").text
    assert "name: <script>" in env  # YAML, not HTML: the bytes the user wrote


def test_ambiguous_prefix_lists_the_candidates(
    tmp_path: Path, channel_server: ChannelServer
) -> None:
    """Two ids sharing 8+ hex characters never happen by chance, so they are written into
    the database of a service of their own."""
    service = InProcessService(tmp_path, channel_server.url)
    ids = ["abcdef01" + "0" * 56, "abcdef01" + "1" * 56]
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'condarchive.sqlite'}")
    try:
        with sessionmaker(bind=engine)() as session:
            for lock_id in ids:
                session.add(Lock(id=lock_id, spec={}, spec_hash="0" * 64, provenance={}))
            session.commit()
        with service.client() as client:
            page = client.get("/l/abcdef01", headers=BROWSER)
            assert page.status_code == 300
            for lock_id in ids:
                assert f'href="/l/{lock_id}"' in page.text
            listed = client.get("/l/abcdef01/pixi.lock", headers=JSON)
            assert listed.status_code == 300
            assert set(listed.json()["links"].values()) == {f"/l/{i}/pixi.lock" for i in ids}
            unique = client.get("/l/abcdef011")
            assert unique.status_code == 307 and unique.headers["location"] == f"/l/{ids[1]}"
            api = client.get(f"/api/v1/locks/abcdef01/diff/{ids[0]}")
            assert api.status_code == 409 and ids[1] in api.json()["detail"]
    finally:
        engine.dispose()
        service.close()


# --- finding locks --------------------------------------------------------------------


def test_search_by_package_and_version_spec(http: httpx.Client, lock_id: str) -> None:
    found = http.get("/api/v1/locks", params={"package": "torchlike", "version": "2.5.*"}).json()
    item = next(i for i in found["items"] if i["id"] == lock_id)
    assert {m["target"] for m in item["matches"]} == {"linux-64", "osx-arm64"}
    assert all(m["version"] == "2.5.0" for m in item["matches"])
    assert item["links"]["permalink"].endswith(f"/l/{lock_id}")
    for version in ("2.6.*", ">=3", "<2.5"):
        other = http.get("/api/v1/locks", params={"package": "torchlike", "version": version})
        assert lock_id not in [i["id"] for i in other.json()["items"]], version
    by_name = http.get("/api/v1/locks", params={"package": "TorchLike"}).json()
    assert lock_id in [i["id"] for i in by_name["items"]]
    none = http.get("/api/v1/locks", params={"package": "no-such-package"}).json()
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0, "links": {}}


def test_search_refuses_bad_queries(http: httpx.Client) -> None:
    bad = http.get("/api/v1/locks", params={"package": "torchlike", "version": ">>2"})
    assert bad.status_code == 422 and "invalid version spec" in bad.text
    for name in ("<script>", "a\x00b"):
        invalid = http.get("/api/v1/locks", params={"package": name})
        assert invalid.status_code == 422 and "not a valid package name" in invalid.text
    orphan = http.get("/api/v1/locks", params={"version": "2.5.*"})
    assert orphan.status_code == 422 and "needs 'package'" in orphan.text


def test_recent_locks_paginate(http: httpx.Client, lock_id: str, channel_url: str) -> None:
    solve_lock(http, channel_url, ["pyutil"], ["osx-arm64"])  # at least two locks
    first = http.get("/api/v1/locks", params={"limit": 1}).json()
    assert first["total"] >= 2 and len(first["items"]) == 1
    assert first["links"]["next"].endswith("limit=1&offset=1")
    second = http.get(first["links"]["next"]).json()
    assert second["items"][0]["id"] != first["items"][0]["id"]
    assert second["links"]["prev"].endswith("limit=1&offset=0")
    times = [i["created_at"] for i in http.get("/api/v1/locks").json()["items"]]
    assert times == sorted(times, reverse=True)


def test_index_pages_list_and_search(http: httpx.Client, lock_id: str) -> None:
    for path in ("/", "/locks"):
        page = http.get(path)
        assert page.status_code == 200 and f'href="/l/{lock_id}"' in page.text
    search = http.get("/locks", params={"package": "torchlike", "version": "2.5.*"})
    assert f'href="/l/{lock_id}"' in search.text and "cpu_0" in search.text
    miss = http.get("/locks", params={"package": "torchlike", "version": "9.*"})
    assert f'href="/l/{lock_id}"' not in miss.text
    bad = http.get("/locks", params={"package": "torchlike", "version": ">>"})
    assert bad.status_code == 422 and "invalid version spec" in bad.text


def test_head_answers_like_get_without_a_body(http: httpx.Client, lock_id: str) -> None:
    page = http.head(f"/l/{lock_id}")  # (its bytes may change with archive status)
    assert page.status_code == 200 and page.content == b"" and page.headers["etag"]
    for path in (f"/l/{lock_id}.json", f"/l/{lock_id}/pixi.lock"):
        get, head = http.get(path), http.head(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["etag"] == get.headers["etag"], path
        assert head.headers["content-length"] == str(len(get.content)), path
    assert http.head("/l/" + "0" * 64).status_code == 404
    assert http.head(f"/l/{lock_id[:8]}").status_code == 307


@pytest.mark.distributed
def test_permalinks_search_and_import_on_postgres(distributed: Service, channel_url: str) -> None:
    """The SQL under prefixes, search and import, on the distributed deployment's Postgres."""
    with httpx.Client(base_url=distributed.url, timeout=60) as client:
        lock_id = solve_lock(client, channel_url, ["torchlike", "timely"], ["linux-64"])
        assert client.get(f"/l/{lock_id[:8]}").headers["location"] == f"/l/{lock_id}"
        assert client.get(f"/l/{lock_id}.json").json()["id"] == lock_id
        assert client.get("/l/" + "f" * 64).status_code == 404
        found = client.get("/api/v1/locks", params={"package": "torchlike", "version": "2.5.*"})
        assert lock_id in [item["id"] for item in found.json()["items"]]
        nul = client.get("/api/v1/locks", params={"package": "a\x00b"})
        assert nul.status_code == 422
        explicit = client.get(f"/l/{lock_id}/explicit/linux-64.txt").text
        imported = client.post("/api/v1/locks/import", json={"content": explicit})
        assert imported.status_code == 200 and imported.json()["lock_id"] == lock_id
        diff = client.get(f"/api/v1/locks/{lock_id[:8]}/diff/{lock_id}").json()
        assert diff["identical"] is True
