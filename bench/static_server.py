"""A loopback file server that behaves like a CDN: cheap HEADs, stat-based ETags, sendfile.

The test suite's ``ChannelServer`` reads and hashes the whole file on every request,
which is right for tests (exact ETags, request counting) but costs ~0.1 s per request on
a 50 MB repodata or a 100 MB package. The benchmark would charge that cost to whichever
side (service or baseline) makes more requests, so it serves files the way a CDN does:
metadata from ``stat``, bytes straight from the page cache with ``sendfile``.
"""

from __future__ import annotations

import mimetypes
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class StaticServer:
    """Serve ``root`` on 127.0.0.1; a channel is a sub-directory (or a symlink to one)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StaticServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.root))
        server.daemon_threads = True
        server.request_queue_size = 128
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="static-server").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = (root / unquote(urlsplit(self.path).path).lstrip("/")).resolve()
            if root not in path.parents or not path.is_file():
                self._status(HTTPStatus.NOT_FOUND)
                return
            stat = path.stat()
            etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if self.headers.get("If-None-Match") == etag:
                self._status(HTTPStatus.NOT_MODIFIED, {"ETag": etag})
                return
            start, end = 0, stat.st_size
            ranged = self.headers.get("Range", "")
            partial = ranged.startswith("bytes=") and "," not in ranged
            if partial:
                first, _, last = ranged[6:].partition("-")
                partial = first.isdigit() and int(first) < stat.st_size
                if partial:
                    start = int(first)
                    end = min(int(last) + 1, stat.st_size) if last.isdigit() else stat.st_size
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{stat.st_size}")
            self.end_headers()
            if not body:
                return
            self.wfile.flush()
            try:
                with path.open("rb") as file:
                    self.connection.sendfile(file, offset=start, count=end - start)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _status(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def alias(root: Path, channel: str, name: str) -> str:
    """Make ``root/name`` another URL for ``root/channel`` (an uncached channel for clients)."""
    link = root / name
    if not link.exists():
        os.symlink(root / channel, link, target_is_directory=True)
    return name
