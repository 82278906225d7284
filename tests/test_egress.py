"""Egress: no request by condarchive leaves the allowlist, and a solve's deadline holds.

Against the real running service (`condarchive serve` with its worker), with hostile
upstreams on 127.0.0.1 and a *canary*: a listener on another loopback port that must never
receive a connection.

* URL-form match specs (a package URL, ``x[url=…]``, ``http://2130706433:…``, ``file://``)
  are refused at POST naming the spec, and again by the worker (issue #12, item 1);
* a channel whose GET (not HEAD) of repodata, a shard or ``repodata.json.zst`` redirects
  to the canary fails the solve (and the import) as `channel`, naming the refused URL, and
  the canary sees nothing (item 3);
* `CONDARCHIVE_MAX_CHANNELS`, and `CONDARCHIVE_SOLVE_TIMEOUT` as a hard deadline against a
  channel that never answers or trickles bytes (item 6).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec, build_channel
from tests.support.service import Service, wait_for_solve

pytestmark = pytest.mark.process


# --- hostile upstreams ---------------------------------------------------------------------


class Canary:
    """A loopback listener that counts the connections it accepts (there must be none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        conn.close()

    def close(self) -> None:
        self.sock.close()


class HostileChannels(ChannelServer):
    """Serves channel directories; a GET (never a HEAD) of a path that contains one of
    `redirect_get[channel]` answers 302 to `target`. HEAD answers as the file would."""

    def __init__(self, root: Path, target: str) -> None:
        super().__init__(root)
        self.target = target
        self.redirect_get: dict[str, tuple[str, ...]] = {}

    def redirect_for(self, method: str, path: str) -> str | None:
        channel = path.strip("/").split("/", 1)[0]
        suffixes = self.redirect_get.get(channel, ())
        if method == "GET" and any(s in path for s in suffixes):
            return f"{self.target}/stolen{path}"
        return super().redirect_for(method, path)


class Tarpit(Canary):
    """Accepts connections and then never answers (`trickle`: sends a response head and
    then one byte a second, forever), holding each connection open."""

    def __init__(self, trickle: bool) -> None:
        self.trickle = trickle
        self.held: list[socket.socket] = []
        self.closed = False
        super().__init__()

    def _take(self, conn: socket.socket) -> None:
        self.held.append(conn)
        if self.trickle:
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
            while not self.closed:
                conn.sendall(b"{")
                time.sleep(1)
        except OSError:
            pass

    def close(self) -> None:
        self.closed = True
        super().close()
        for conn in self.held:
            conn.close()


PACKAGES = [
    PackageSpec("libfoo", "1.0", "h0_0", 0, "linux-64"),
    PackageSpec("plain", "1.0", "0", 0, "noarch"),
]


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, canary: Canary) -> Iterator[HostileChannels]:
    root = tmp_path_factory.mktemp("egress-channels")
    build_channel(root / "good", PACKAGES)
    build_channel(root / "getredir", PACKAGES, shards=False)  # repodata.json(.zst) GET -> 302
    build_channel(root / "zstredir", PACKAGES, shards=False)  # only repodata.json.zst -> 302
    build_channel(root / "shardidx", PACKAGES)  # the shard index -> 302
    build_channel(root / "shardredir", PACKAGES)  # one shard file -> 302
    channels = HostileChannels(root, canary.url).start()
    channels.redirect_get = {
        "getredir": ("repodata.json", "repodata.json.zst"),
        "zstredir": ("repodata.json.zst",),
        "shardidx": ("repodata_shards.msgpack.zst",),
        "shardredir": ("/shards/",),
    }
    yield channels
    channels.stop()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, hostile: HostileChannels
) -> Iterator[Service]:
    svc = start_service(
        tmp_path_factory.mktemp("egress-service"),
        f"http://127.0.0.1:{hostile.port}",
        archive="off",
    )
    yield svc
    errors = svc.server_errors()
    stop_service(svc)
    assert errors == [], "the service answered 5xx"


@pytest.fixture
def http(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as client:
        yield client


def solve(http: httpx.Client, channels: list[str], deps: list[str]) -> httpx.Response:
    return http.post(
        "/api/v1/solves",
        json={"channels": channels, "dependencies": deps, "targets": ["linux-64"]},
    )


# --- item 1: URL-form match specs ----------------------------------------------------------


def _url_specs(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/internal/a-1-0.conda",
        f"x[url=http://127.0.0.1:{port}/internal/a-1-0.conda]",
        f"http://127.0.0.1:{port}/internal/a-1-0.tar.bz2",
        f"http://2130706433:{port}/internal/a-1-0.conda",
        "file:///etc/a-1-0.conda",
        "a[url=/etc/passwd]",
        "http://169.254.169.254/latest/a-1-0.conda",
    ]


def test_url_specs_are_refused_at_post_naming_the_spec(
    http: httpx.Client, hostile: HostileChannels, canary: Canary
) -> None:
    for spec in _url_specs(canary.port):
        response = solve(http, [hostile.channel_url("good")], ["libfoo", spec])
        assert response.status_code == 422, (spec, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "dependencies", 1], detail
        assert spec in detail["msg"] and "refused" in detail["msg"], detail
        # In environment.yml, the location is the line's item there.
        env = (
            f"channels: [{hostile.channel_url('good')}]\ndependencies:\n  - libfoo\n  - '{spec}'\n"
        )
        response = http.post("/api/v1/solves", json={"environment": env, "targets": ["linux-64"]})
        assert response.status_code == 422, (spec, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "environment", "dependencies", 1], detail
    # A package URL inside the allowlist is still a valid spec.
    good = f"{hostile.channel_url('good')}/linux-64/libfoo-1.0-h0_0.conda"
    assert solve(http, [hostile.channel_url("good")], [good]).status_code in (200, 202)
    time.sleep(0.5)
    assert canary.connections == 0


def test_url_specs_are_refused_by_the_worker_too(tmp_path: Path, hostile: HostileChannels) -> None:
    """A job accepted under a wider allowlist is checked again as the worker runs it, before
    anything is fetched, and the error reads the same for an open and a closed port."""
    open_port = Canary()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    wide = ",".join(
        [
            f"http://127.0.0.1:{hostile.port}",
            f"http://127.0.0.1:{open_port.port}/internal",
            f"http://127.0.0.1:{closed_port}/internal",
        ]
    )
    accepting = start_service(tmp_path, wide, no_worker=True, archive="off")
    jobs = {}
    with httpx.Client(base_url=accepting.url, timeout=30) as client:
        for port in (open_port.port, closed_port):
            spec = f"http://127.0.0.1:{port}/internal/a-1-0.conda"
            response = solve(client, [hostile.channel_url("good")], [spec])
            assert response.status_code == 202, response.text
            jobs[port] = response.json()["id"]
    stop_service(accepting)
    narrow = start_service(tmp_path, f"http://127.0.0.1:{hostile.port}", archive="off")
    try:
        with httpx.Client(base_url=narrow.url, timeout=30) as client:
            errors = {}
            for port, job_id in jobs.items():
                job = wait_for_solve(client, job_id)
                assert job["status"] == "failed", job
                assert job["error"]["kind"] == "channel", job
                assert "refused" in job["error"]["message"], job
                errors[port] = job["error"]["message"].replace(str(port), "PORT")
        assert errors[open_port.port] == errors[closed_port], errors
        assert open_port.connections == 0
    finally:
        stop_service(narrow)
        open_port.close()


# --- item 3: redirects on GET, from py-rattler in the worker and in the API -----------------


@pytest.mark.parametrize("channel", ["getredir", "zstredir", "shardidx", "shardredir"])
def test_get_redirect_to_canary_fails_the_solve_and_never_connects(
    http: httpx.Client, hostile: HostileChannels, canary: Canary, channel: str
) -> None:
    before = len(hostile.requests)
    response = solve(http, [hostile.channel_url(channel)], ["libfoo"])
    assert response.status_code == 202, response.text
    job = wait_for_solve(http, response.json()["id"])
    redirected = [
        path
        for method, path in hostile.requests[before:]
        if method == "GET" and any(s in path for s in hostile.redirect_get[channel])
    ]
    assert redirected, f"py-rattler never asked for a redirected file: {hostile.requests[before:]}"
    assert job["status"] == "failed", job
    assert job["error"]["kind"] == "channel", job
    assert f"127.0.0.1:{canary.port}" in job["error"]["message"], job
    assert canary.connections == 0


def test_import_with_get_redirect_never_connects(
    http: httpx.Client, hostile: HostileChannels, canary: Canary
) -> None:
    content = (
        "# platform: linux-64\n@EXPLICIT\n"
        f"{hostile.channel_url('getredir')}/linux-64/libfoo-1.0-h0_0.conda\n"
    )
    response = http.post("/api/v1/locks/import", json={"content": content})
    assert response.status_code == 422, response.text
    assert f"127.0.0.1:{canary.port}" in response.text, response.text
    assert canary.connections == 0


def test_egress_refusals_are_logged(service: Service, canary: Canary) -> None:
    assert f"egress refused http://127.0.0.1:{canary.port}/stolen/" in service.logs()


# --- item 6: channels per request, and the solve deadline ----------------------------------


def test_max_channels(http: httpx.Client, hostile: HostileChannels) -> None:
    many = [hostile.channel_url(f"c{i}") for i in range(30_000)]
    started = time.monotonic()
    response = solve(http, many, ["libfoo"])
    assert time.monotonic() - started < 5
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "channels"]
    assert detail["type"] == "limit_exceeded"
    assert detail["ctx"] == {"setting": "CONDARCHIVE_MAX_CHANNELS", "limit": 32}
    # Channels named inside match specs count too.
    specs = [f"{hostile.channel_url(f'c{i}')}::libfoo" for i in range(40)]
    response = solve(http, [hostile.channel_url("good")], specs)
    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["ctx"]["setting"] == "CONDARCHIVE_MAX_CHANNELS", detail
    assert solve(http, [hostile.channel_url(f"c{i}") for i in range(32)], ["x"]).status_code == 202


@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickle"])
def test_solve_timeout_is_a_hard_deadline(
    tmp_path: Path, hostile: HostileChannels, trickle: bool
) -> None:
    """Many channels on a tarpit (as the issue's 30,000 did) held the worker in httpcore's
    pool long past the timeout; the deadline now holds whatever the I/O does."""
    tarpit = Tarpit(trickle)
    timeout, count = 4.0, 3000
    svc = start_service(
        tmp_path,
        f"{tarpit.url},http://127.0.0.1:{hostile.port}",
        archive="off",
        solve_timeout=str(timeout),
        max_channels=str(count),
    )
    try:
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            started = time.monotonic()
            response = solve(client, [f"{tarpit.url}/c{i}" for i in range(count)], ["libfoo"])
            assert response.status_code == 202, response.text
            job = wait_for_solve(client, response.json()["id"], timeout=60)
            took = time.monotonic() - started
            assert job["status"] == "failed", job
            assert tarpit.connections > 0, f"the tarpit was never reached: {job}"
            assert job["error"]["kind"] == "timeout", job
            assert took < timeout + 8, f"the job ended {took:.1f}s after it was sent"
            # The worker is free for the next job.
            response = solve(client, [hostile.channel_url("good")], ["libfoo"])
            assert response.status_code in (200, 202), response.text
            job = wait_for_solve(client, response.json()["id"], timeout=30)
            assert job["status"] == "succeeded", job
    finally:
        stop_service(svc)
        tarpit.close()


def test_egress_proxy_connect_checks_host_and_port(canary: Canary) -> None:
    """The https path (CONNECT), which the loopback channels above do not take: a tunnel
    opens only to an allowlist entry's host and port, and nothing is connected otherwise."""
    from app.core.egress_proxy import EgressProxy

    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(4)
    echo_port = echo.getsockname()[1]

    def serve_echo() -> None:
        conn, _ = echo.accept()
        conn.sendall(conn.recv(100))
        conn.close()

    threading.Thread(target=serve_echo, daemon=True).start()
    allowed = [f"https://127.0.0.1:{echo_port}/chan"]
    proxy = EgressProxy(lambda: (allowed, "https://conda.anaconda.org"))
    try:
        for target, expected in (
            (f"127.0.0.1:{canary.port}", b"403"),
            (f"2130706433:{canary.port}", b"403"),
            (f"169.254.169.254:{echo_port}", b"403"),
            (f"127.0.0.1:{echo_port}", b"200"),
        ):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
                answer = sock.recv(4096)
                assert answer.split(b" ")[1] == expected, (target, answer)
                if expected == b"200":
                    sock.sendall(b"ping")
                    assert sock.recv(4) == b"ping"
        assert [r.url for r in proxy.refusals][0] == f"https://127.0.0.1:{canary.port}"
        assert canary.connections == 0
    finally:
        proxy.close()
        echo.close()
