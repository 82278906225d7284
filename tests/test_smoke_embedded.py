"""End to end in embedded mode: POST a spec, poll, read the lock."""

from __future__ import annotations

import httpx
import pytest

from tests.support.service import wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes


def test_solve_two_platforms(client: httpx.Client, channel_url: str) -> None:
    response = client.post(
        "/api/v1/solves",
        json={
            "channels": [channel_url],
            "dependencies": ["numlib>=1.20,<2", "pyutil"],
            "targets": ["linux-64", "osx-arm64"],
        },
    )
    assert response.status_code == 202, response.text
    job = wait_for_solve(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    lock = client.get(f"/api/v1/locks/{job['lock_id']}").json()
    assert set(lock["targets"]) == {"linux-64", "osx-arm64"}
    for name, target in lock["targets"].items():
        packages = {p["name"]: p for p in target["packages"]}
        assert packages["numlib"]["version"] == "1.26.4", name
        assert packages["libfoo"]["version"] == "1.1"
        assert packages["pyutil"]["subdir"] == "noarch"
        for package in packages.values():
            assert len(package["sha256"]) == 64 and len(package["md5"]) == 32
            assert package["size"] > 0
            assert package["url"].startswith(channel_url)
