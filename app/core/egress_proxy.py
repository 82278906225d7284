"""An in-process forward proxy on 127.0.0.1 that py-rattler's HTTP goes through.

py-rattler fetches repodata, shards and `.zst` files itself (reqwest, in Rust), follows
redirects itself, and offers no hook per request. It does take a proxy: every request it
sends, redirect hops included, then reaches this proxy first, which

* for plain http (an absolute-URI request) checks the whole URL against the allowlist
  (:func:`app.core.channels.fetch_refusal`: scheme, credentials, dot segments, private
  address, allowlist prefix);
* for https (a CONNECT tunnel, whose path TLS hides) checks that host and port are the
  origin of an allowlist entry (:func:`app.core.channels.origin_refusal`);
* and in both cases resolves the host once, refuses a private, loopback or link-local
  address the allowlist does not name (:func:`app.core.channels.address_refusal`), and
  connects to the very address it checked, so a second DNS answer cannot differ.

A refusal answers ``403`` with the reason, is logged, and is kept in :func:`refusals` so
the solver can name the refused URL in the job's error. Nothing is connected to a refused
address, so a refusal reads the same whether a port there is open or closed.

One proxy runs per process (started on first use, again after a fork); each connection
is served by a daemon thread. :func:`abort_all` cuts every open connection, which is how
the solver ends py-rattler I/O stuck past its deadline (a tarpit that never answers).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import rattler

from app.core.channels import address_refusal, fetch_refusal, origin_refusal
from app.core.egress import allowlist

log = logging.getLogger(__name__)

#: Largest request or response head read (bytes); reqwest sends a few hundred.
MAX_HEAD = 65_536
#: Seconds to connect upstream, and to wait for a client's request head.
CONNECT_TIMEOUT = 15.0
#: Seconds a connection may carry no bytes either way before it is closed.
IDLE_TIMEOUT = 300.0
#: Headers meant for the proxy or the hop, not for upstream.
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "te"}


@dataclass(frozen=True)
class Refusal:
    at: float  # time.monotonic()
    url: str
    reason: str


Policy = Callable[[], tuple[list[str], str]]


class _Refused(Exception):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


class _Unreachable(_Refused):
    """Upstream could not be resolved or connected to (an allowed host): 502."""


class EgressProxy:
    """The proxy; `policy()` gives the allowlist entries and channel alias to enforce."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.refusals: deque[Refusal] = deque(maxlen=256)
        self.unreachable: deque[Refusal] = deque(maxlen=256)  # allowed, but no connection
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.pid = os.getpid()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="egress-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.abort_all()

    # --- connections ---------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.close()
        except OSError:
            pass

    def abort_all(self) -> int:
        """Cut every open connection (both ends); returns how many were open."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(sockets)

    # --- one client connection -----------------------------------------------------------

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            client.settimeout(CONNECT_TIMEOUT)
            head, rest = _read_head(client)
            if not head:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = (lines[0].split(" ") + ["", ""])[:3]
            if method == "CONNECT":
                upstream = self._connect(target)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
                _splice(client, upstream)
            else:
                upstream = self._forward(client, method, target, lines[1:], rest)
        except _Unreachable as failed:
            self.unreachable.append(Refusal(time.monotonic(), failed.url, failed.reason))
            self._answer(client, 502, f"condarchive egress could not reach {failed.url}: {failed}")
        except _Refused as refused:
            self._refuse(client, refused)
        except OSError as exc:
            log.debug("egress proxy: connection ended: %s", exc)
        finally:
            if upstream is not None:
                self._forget(upstream)
            self._forget(client)

    def _refuse(self, client: socket.socket, refused: _Refused) -> None:
        self.refusals.append(Refusal(time.monotonic(), refused.url, refused.reason))
        log.warning("egress refused %s: %s", refused.url, refused.reason)
        self._answer(client, 403, f"condarchive egress refused {refused.url}: {refused.reason}")

    @staticmethod
    def _answer(client: socket.socket, status: int, text: str) -> None:
        body = f"{text}\n".encode()
        reason = {403: "Forbidden", 502: "Bad Gateway"}[status]
        try:
            client.sendall(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n".encode()
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
        except OSError:
            pass

    def _open_checked(self, url: str, host: str, port: int) -> socket.socket:
        """Resolve `host` once, check its addresses, and connect to one that passed."""
        allowed, alias = self.policy()
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _Unreachable(url, f"cannot resolve {host}: {exc}") from exc
        reason = address_refusal(host, [str(i[4][0]) for i in infos], allowed, alias)
        if reason is not None:
            raise _Refused(url, reason)
        last: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            self._track(sock)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(address)
                return sock
            except OSError as exc:
                last = exc
                self._forget(sock)
        raise _Unreachable(url, f"cannot connect to {host}:{port}: {last}")

    def _connect(self, target: str) -> socket.socket:
        host, _, port_text = target.rpartition(":")
        url = f"https://{target}"
        if not host or not port_text.isdigit():
            raise _Refused(url, "a CONNECT target must be host:port")
        allowed, alias = self.policy()
        reason = origin_refusal("https", host, int(port_text), allowed, alias)
        if reason is not None:
            raise _Refused(url, reason)
        return self._open_checked(url, host.strip("[]"), int(port_text))

    def _forward(
        self, client: socket.socket, method: str, target: str, headers: list[str], rest: bytes
    ) -> socket.socket:
        parts = urlsplit(target)
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise _Refused(target, "only absolute http:// URLs and CONNECT are proxied")
        allowed, alias = self.policy()
        reason = fetch_refusal(target, allowed, alias)
        if reason is not None:
            raise _Refused(target, reason)
        port = parts.port or 80
        upstream = self._open_checked(target, parts.hostname, port)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        kept = [h for h in headers if h and h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
        if not any(h.lower().startswith("host:") for h in kept):
            kept.insert(0, f"Host: {parts.netloc}")
        request = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""])
        upstream.sendall(request.encode("latin-1") + rest)
        # Answer with `Connection: close` so the client never reuses this connection for
        # another URL that would not be checked.
        upstream.settimeout(IDLE_TIMEOUT)
        response_head, body = _read_head(upstream)
        if not response_head:
            raise OSError(f"{target}: upstream closed without answering")
        lines = response_head.decode("latin-1").split("\r\n")
        kept = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() != "connection"]
        kept += _validator_for_304(lines[0], kept, headers)
        client.sendall(
            "\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1") + body
        )
        _copy(upstream, client)
        return upstream


def _validator_for_304(status_line: str, response: list[str], request: list[str]) -> list[str]:
    """The `Last-Modified` a validator-less 304 answers for: its request's If-Modified-Since.

    A static server without ETags (``python -m http.server``) answers a revalidation with a
    bare 304, as RFC 9110 allows. py-rattler's cache (http-cache-semantics) then finds no
    validator to match the stored response's Last-Modified against, takes the 304 for a new
    response, and fails the sharded index with "unexpected status code (304 Not Modified)"
    (conda/rattler#2719). The 304 says "not modified since" the date py-rattler sent, which
    is the stored Last-Modified: echoing it lets py-rattler keep its cached index.
    """
    if status_line.split(" ", 2)[1:2] != ["304"]:
        return []
    names = {h.split(":", 1)[0].strip().lower() for h in response}
    if names & {"etag", "last-modified"}:
        return []
    for header in request:
        name, _, value = header.partition(":")
        if name.strip().lower() == "if-modified-since" and value.strip():
            return [f"Last-Modified: {value.strip()}"]
    return []


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head without its blank line, bytes read past it); (b"", b"") at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(8192)
        if not chunk:
            return b"", b""
        data += chunk
        if len(data) > MAX_HEAD:
            raise OSError("request or response head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _copy(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(IDLE_TIMEOUT)
    while chunk := source.recv(65536):
        sink.sendall(chunk)


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes or nothing moves for IDLE_TIMEOUT."""
    a.setblocking(True)
    b.setblocking(True)
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while True:
            ready = selector.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                chunk = source.recv(65536)
                if not chunk:
                    return
                key.data.sendall(chunk)


_proxy: EgressProxy | None = None
_proxy_lock = threading.Lock()


def egress_proxy(policy: Policy | None = None) -> EgressProxy:
    """This process's proxy, started on first use (and again in a forked child).

    `policy` defaults to the settings' allowlist and alias (app/core/egress.py).
    """
    global _proxy
    with _proxy_lock:
        if _proxy is None or _proxy.pid != os.getpid():
            _proxy = EgressProxy(policy or allowlist)
        return _proxy


def refusals_since(started: float) -> list[Refusal]:
    """What this process's proxy refused since `started` (time.monotonic())."""
    if _proxy is None or _proxy.pid != os.getpid():
        return []
    return [r for r in list(_proxy.refusals) if r.at >= started]


def unreachable_since(started: float) -> list[Refusal]:
    """Allowed URLs this process's proxy could not connect to since `started`."""
    if _proxy is None or _proxy.pid != os.getpid():
        return []
    return [r for r in list(_proxy.unreachable) if r.at >= started]


def abort_all() -> int:
    """Cut every connection this process's proxy has open (see the module docstring)."""
    if _proxy is None or _proxy.pid != os.getpid():
        return 0
    return _proxy.abort_all()


def rattler_client(max_retries: int = 3) -> rattler.Client:
    """py-rattler's standard client (retries, auth), with every request sent through this
    process's egress proxy: plain http and https alike, no host exempt."""
    url = egress_proxy().url
    config = rattler.Config.from_toml(
        f'[proxy-config]\nhttp = "{url}"\nhttps = "{url}"\nnon-proxy-hosts = []\n'
    )
    return rattler.Client.from_config(config, max_retries=max_retries)
