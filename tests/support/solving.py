"""Make locks through the running service, as a user does: POST a solve, wait for it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.service import wait_for_solve


def solve_lock(
    client: httpx.Client,
    channel_url: str,
    dependencies: list[str],
    targets: list[Any],
    **body: Any,
) -> str:
    """Solve and return the lock id (identical requests reuse the finished solve)."""
    response = client.post(
        "/api/v1/solves",
        json={"channels": [channel_url], "dependencies": dependencies, "targets": targets, **body},
    )
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job["lock_id"]


def solve_environment(client: httpx.Client, environment: str, targets: list[Any]) -> str:
    """Solve an environment.yml text (kept verbatim as the submitted spec)."""
    response = client.post("/api/v1/solves", json={"environment": environment, "targets": targets})
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job["lock_id"]
