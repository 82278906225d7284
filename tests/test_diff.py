"""Comparing two locks: the API, the page, and the diff as a pure function."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.locks.diff import diff_locks
from tests.support.solving import solve_lock


@pytest.fixture(scope="module")
def http(api: httpx.Client) -> httpx.Client:
    """The in-process service (tests/support/inprocess.py)."""
    return api


@pytest.fixture(scope="module")
def before(http: httpx.Client, channel_url: str) -> str:
    return solve_lock(http, channel_url, ["numlib<1.26", "timely"], ["linux-64", "osx-arm64"])


@pytest.fixture(scope="module")
def after(http: httpx.Client, channel_url: str) -> str:
    return solve_lock(
        http, channel_url, ["numlib>=1.26", "pyutil"], ["linux-64", "linux-64-cuda12"]
    )


def test_api_diff_per_target(http: httpx.Client, before: str, after: str) -> None:
    response = http.get(f"/api/v1/locks/{before}/diff/{after}")
    assert response.status_code == 200, response.text
    diff = response.json()
    assert (diff["a"], diff["b"], diff["identical"]) == (before, after, False)
    linux = diff["targets"]["linux-64"]
    assert linux["in"] == "both"
    assert [p["name"] for p in linux["added"]] == ["pyutil"]
    assert [p["name"] for p in linux["removed"]] == ["timely"]
    changed = {c["name"]: c for c in linux["changed"]}
    assert set(changed) == {"numlib"}
    assert changed["numlib"]["fields"] == ["version"]
    assert (changed["numlib"]["from"]["version"], changed["numlib"]["to"]["version"]) == (
        "1.20.0",
        "2.0.0",
    )
    assert linux["unchanged"] == 1  # libfoo
    assert diff["targets"]["osx-arm64"]["in"] == "a"
    assert diff["targets"]["osx-arm64"]["removed"] and not diff["targets"]["osx-arm64"]["added"]
    cuda = diff["targets"]["linux-64-cuda12"]
    assert cuda["in"] == "b" and cuda["platform"] == {"a": None, "b": "linux-64"}
    assert {p["name"] for p in cuda["added"]} == {"libfoo", "numlib", "pyutil"}
    assert diff["summary"]["changed"] == 1


def test_api_diff_accepts_prefixes_and_knows_identity(
    http: httpx.Client, before: str, after: str
) -> None:
    short = http.get(f"/api/v1/locks/{before[:8]}/diff/{after[:12]}").json()
    assert (short["a"], short["b"]) == (before, after)
    same = http.get(f"/api/v1/locks/{before}/diff/{before}").json()
    assert same["identical"] and same["summary"] == {"added": 0, "removed": 0, "changed": 0}
    missing = http.get(f"/api/v1/locks/{before}/diff/{'0' * 64}")
    assert missing.status_code == 404 and "0" * 64 in missing.json()["detail"]


def test_diff_page(http: httpx.Client, before: str, after: str) -> None:
    page = http.get(f"/l/{before}/diff/{after}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    text = page.text
    assert '<tr class="changed"><td>~</td><td>numlib' in text, text
    assert "1.20.0" in text and "2.0.0" in text
    assert "Only in" in page.text
    redirect = http.get(f"/l/{before[:9]}/diff/{after[:9]}")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"/l/{before}/diff/{after}"
    form = http.get(f"/l/{before}/diff", params={"other": after[:10]}, follow_redirects=True)
    assert form.status_code == 200 and str(form.url).endswith(f"/diff/{after}")
    as_json = http.get(f"/l/{before}/diff/{after}", headers={"Accept": "application/json"})
    assert as_json.json() == http.get(f"/api/v1/locks/{before}/diff/{after}").json()
    assert "immutable" in as_json.headers["cache-control"]


def package(name: str, version: str, build: str = "0", channel: str = "c") -> dict[str, Any]:
    url = f"https://x.org/{channel}/noarch/{name}-{version}-{build}.conda"
    return {
        "name": name,
        "version": version,
        "build": build,
        "channel": channel,
        "subdir": "noarch",
        "url": url,
        "sha256": "s" + url,
        "md5": "m" + url,
    }


def test_diff_is_about_files() -> None:
    def lock(lock_id: str, packages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": lock_id, "targets": {"t": {"platform": "linux-64", "packages": packages}}}

    a = lock("a", [package("x", "1"), package("y", "1"), package("z", "1"), package("w", "1")])
    moved = package("z", "1", channel="other")
    replaced = package("w", "1") | {"sha256": "different"}
    b = lock("b", [package("x", "1"), package("y", "1", build="1"), moved, replaced])
    [*changes] = diff_locks(a, b)["targets"]["t"]["changed"]
    assert {c["name"]: c["fields"] for c in changes} == {
        "w": ["file"],
        "y": ["build"],
        "z": ["channel"],
    }
    assert diff_locks(a, b)["targets"]["t"]["unchanged"] == 1
