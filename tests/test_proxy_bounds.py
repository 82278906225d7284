"""The pull-through proxy fetches only real conda subdirs, and caps what upstream repodata
may decode to (a gzip bomb stops at `CONDARCHIVE_PROXY_MAX_REPODATA_BYTES`)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.service import Service

pytestmark = pytest.mark.process  # condarchive runs as real processes

LIMIT = 1_000_000
#: 64 MB of JSON whitespace gzips to ~64 kB.
BOMB = gzip.compress(b'{"packages": {}, "info": {}' + b" " * (64 << 20) + b"}", 9)


class Upstream:
    """A channel server that answers any repodata.json with the gzip bomb, and logs paths."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                owner.paths.append(self.path)
                if not self.path.endswith("/repodata.json"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(BOMB)))
                self.end_headers()
                self.wfile.write(BOMB)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Upstream]]:
    upstream = Upstream()
    service = start_service(
        tmp_path_factory.mktemp("proxy-bounds"),
        upstream.url,
        no_worker=True,
        proxy_channels=f"bomb={upstream.url}/bombchan",
        proxy_max_repodata_bytes=str(LIMIT),
    )
    try:
        yield service, upstream
    finally:
        stop_service(service)
        upstream.stop()


def _cache_dirs(service: Service) -> list[Path]:
    root = Path(service.env["CONDARCHIVE_DATA_DIR"]) / "proxy-cache"
    return sorted(p for p in root.rglob("*") if p.is_dir()) if root.exists() else []


@pytest.mark.parametrize(
    "path",
    [
        "made-up/repodata.json",
        "made-up/repodata.json.zst",
        "linux-65/pkg-1.0-0.conda",
        "x/pkg-1.0-0.tar.bz2",
    ],
)
def test_an_invented_subdir_is_a_404_with_no_upstream_request(
    proxied: tuple[Service, Upstream], path: str
) -> None:
    service, upstream = proxied
    before = list(upstream.paths)
    response = httpx.get(f"{service.url}/channels/bomb/{path}", timeout=30)
    assert response.status_code == 404, response.text
    assert "subdir" in response.json()["detail"]
    assert upstream.paths == before
    assert not any(p.name in ("made-up", "linux-65", "x") for p in _cache_dirs(service))


def test_a_gzip_bomb_stops_at_the_limit(proxied: tuple[Service, Upstream]) -> None:
    service, upstream = proxied
    response = httpx.get(f"{service.url}/channels/bomb/linux-64/repodata.json", timeout=60)
    assert response.status_code == 502, response.text
    assert f"CONDARCHIVE_PROXY_MAX_REPODATA_BYTES={LIMIT}" in response.json()["detail"]
    assert any(p.endswith("/linux-64/repodata.json") for p in upstream.paths)
    root = Path(service.env["CONDARCHIVE_DATA_DIR"]) / "proxy-cache"
    kept = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert kept <= LIMIT, f"{kept} bytes left in the proxy cache"
    assert "Traceback" not in service.logs()
