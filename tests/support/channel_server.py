"""A real HTTP server on 127.0.0.1 that serves a conda channel directory.

Tests control it: stop and restart it, make paths answer an error status or answer
slowly, count requests. It supports HEAD, ETag / If-None-Match and single Range
requests, as the conda CDN does, so clients under test take their real code paths.
"""

from __future__ import annotations

import hashlib
import mimetypes
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ChannelServer:
    """Serve `root` over HTTP; each channel is a sub-directory (`{url}/{channel}/{subdir}/...`)."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root
        self.port = port
        self.faults: dict[str, int] = {}  # path -> status to answer instead
        self.delays: dict[str, float] = {}  # path prefix -> seconds to wait before answering
        self.requests: list[tuple[str, str]] = []  # (method, path)
        # Slow or broken upstreams, for the archive tests:
        self.rates: dict[str, int] = {}  # path -> bytes per second to send the body at
        self.cutoffs: dict[str, int] = {}  # path -> drop the connection after N body bytes, once
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of ranged requests
        self.redirects: dict[str, str] = {}  # path -> URL to answer 302 Found with
        self.flaky: dict[str, list[int]] = {}  # path -> statuses to answer first, one each
        # Cache-Control sent with every file (None: none, and clients may cache a
        # response heuristically, for a tenth of its age since Last-Modified)
        self.cache_control: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def channel_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def start(self) -> ChannelServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def delay_for(self, path: str) -> float:
        with self._lock:
            return max((s for p, s in self.delays.items() if path.startswith(p)), default=0.0)

    def take_flaky(self, path: str) -> int | None:
        """The next status a flaky path answers with, or None once it has recovered."""
        with self._lock:
            statuses = self.flaky.get(path)
            return statuses.pop(0) if statuses else None

    def redirect_for(self, method: str, path: str) -> str | None:
        """Where a request answers 302 Found to, if it does (a subclass may redirect more)."""
        return self.redirects.get(path)

    def count(self, suffix: str) -> int:
        with self._lock:
            return sum(1 for _, path in self.requests if path.endswith(suffix))

    def __enter__(self) -> ChannelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(owner: ChannelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            owner.record(self.command, path)
            if self.headers.get("Range"):
                owner.ranges.append((path, self.headers["Range"]))
            delay = owner.delay_for(path)
            if delay:
                time.sleep(delay)
            if location := owner.redirect_for(self.command, path):
                self._empty(HTTPStatus.FOUND, {"Location": location})
                return
            if path in owner.faults:
                self._empty(owner.faults[path])
                return
            if status := owner.take_flaky(path):
                self._empty(status)
                return
            file = (owner.root / path.lstrip("/")).resolve()
            if owner.root.resolve() not in file.parents or not file.is_file():
                self._empty(HTTPStatus.NOT_FOUND)
                return
            data = file.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            if self.headers.get("If-None-Match") == etag:
                self._empty(HTTPStatus.NOT_MODIFIED, {"ETag": etag})
                return
            status, start, end = HTTPStatus.OK, 0, len(data)
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and "," not in ranged:
                first, _, last = ranged[6:].partition("-")
                if first.isdigit() and int(first) < len(data):
                    start = int(first)
                    end = int(last) + 1 if last.isdigit() else len(data)
                    status = HTTPStatus.PARTIAL_CONTENT
            headers = {
                "Content-Type": mimetypes.guess_type(file.name)[0] or "application/octet-stream",
                "Content-Length": str(end - start),
                "ETag": etag,
                "Accept-Ranges": "bytes",
                "Last-Modified": self.date_time_string(int(file.stat().st_mtime)),
            }
            if owner.cache_control:
                headers["Cache-Control"] = owner.cache_control
            if status == HTTPStatus.PARTIAL_CONTENT:
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                try:
                    self._write_body(path, data[start:end])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        def _write_body(self, path: str, data: bytes) -> None:
            cutoff = owner.cutoffs.pop(path, None)
            if cutoff is not None:
                data = data[:cutoff]
                self.close_connection = True  # the client sees a truncated body
            rate = owner.rates.get(path)
            if not rate:
                self.wfile.write(data)
                return
            step = max(rate // 20, 1)
            for offset in range(0, len(data), step):
                self.wfile.write(data[offset : offset + step])
                self.wfile.flush()
                time.sleep(step / rate)

        def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
