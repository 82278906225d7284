"""Postgres unreachable: every route answers 503 with Retry-After, fast; then recovers.

The service and its worker reach Postgres through a TCP proxy the test controls
(tests/support/tcp_proxy.py), so the test can cut the database off (listener closed,
open connections cut) and bring it back without touching the shared server.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.channel_server import ChannelServer
from tests.support.faults import (
    fault_service,
    finish,
    redis_server,  # noqa: F401 - fixture
    solve_body,
    wait_for,
)
from tests.support.redis_server import RedisServer
from tests.support.service import submit_and_wait
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.process, pytest.mark.distributed]


def test_api_answers_503_while_postgres_is_down_and_recovers_without_restart(
    tmp_path: Path,
    channel_server: ChannelServer,
    fresh_postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    proxied = fresh_postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    service = fault_service(tmp_path, channel_server, proxied, redis_server.url, workers=1)
    channel = channel_server.channel_url("testchan")
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            job = submit_and_wait(http, solve_body(channel))
            assert job["status"] == "succeeded", job
            reads = [
                "/api/v1/health",
                f"/api/v1/solves/{job['id']}",
                f"/api/v1/locks/{job['lock_id']}",
                f"/api/v1/locks/{job['lock_id']}/archive",
                f"/l/{job['lock_id']}",
            ]

            proxy.stop()
            for method, path, body in [
                *(("GET", path, None) for path in reads),
                ("POST", "/api/v1/solves", solve_body(channel)),
            ]:
                started = time.monotonic()
                response = http.request(method, path, json=body)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (path, response.status_code, response.text)
                assert response.headers["Retry-After"] == "5", path
                assert response.json() == {
                    "detail": "the database is unavailable; try again shortly"
                }, path
                assert elapsed < 8, f"{path} took {elapsed:.1f}s to answer"

            proxy.start()  # same port: the service reconnects by itself
            wait_for(
                "health back to 200",
                lambda: http.get("/api/v1/health").status_code == 200,
                timeout=20,
            )
            for path in reads:
                assert http.get(path).status_code == 200, path
            # Writes work again, and the worker found its way back too.
            again = submit_and_wait(http, solve_body(channel, "pyutil"))
            assert again["status"] == "succeeded", again
        unexpected = [line for line in service.server_errors() if '" 503 ' not in line]
        assert unexpected == [], "only 503s while the database was down"
    finally:
        finish(service)
        proxy.stop()
