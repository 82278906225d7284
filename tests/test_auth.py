"""Who may write: API tokens, their scopes, public reads, and the CLI on both sides.

Against running services: one with CONDARCHIVE_AUTH=token, one that also requires a token
to read, and (on Postgres) the distributed default. Tokens are made and revoked with
`condarchive token ...` in a subprocess, as an operator would.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.auth import tokens as auth
from app.cli import tokens as cli_tokens
from tests.conftest import REDIS_URL, start_service, stop_service
from tests.support import testchan
from tests.support.channel_server import ChannelServer
from tests.support.packages import build_channel
from tests.support.service import ROOT, Service, wait_for_solve

pytestmark = pytest.mark.process  # condarchive runs as real processes


def condarchive(
    service: Service, *args: str, token: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`condarchive ARGS` with the service's settings (and CONDARCHIVE_TOKEN if given)."""
    env = dict(service.env)
    if token:
        env["CONDARCHIVE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def new_token(service: Service, scope: str, name: str | None = None) -> str:
    name = name or f"{scope}-{uuid.uuid4().hex[:8]}"
    result = condarchive(service, "token", "create", "--name", name, "--scope", scope)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("cat_") and len(token) > 40
    return token


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    """This module's own copy of the test channel: `verify`, which an admin runs here,
    fetches whole repodata.json files, and other modules check that the session's channel
    is never asked for those."""
    root = tmp_path_factory.mktemp("auth-channels")
    build_channel(root / "testchan", testchan.testchan_packages())
    with ChannelServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def upstream_url(upstream: ChannelServer) -> str:
    return upstream.channel_url("testchan")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Secured:
    """A token-mode service, its HTTP client, and one token of each scope."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.http = httpx.Client(base_url=service.url, timeout=60)
        self.solve = new_token(service, "solve")
        self.imports = new_token(service, "import")
        self.admin = new_token(service, "admin")


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, upstream: ChannelServer, upstream_url: str
) -> Iterator[Secured]:
    service = start_service(
        tmp_path_factory.mktemp("auth-token"),
        upstream.url,
        auth="token",
        proxy_channels=f"up={upstream_url}",
    )
    secured = Secured(service)
    yield secured
    secured.http.close()
    assert service.server_errors() == []
    stop_service(service)


def solve_body(upstream_url: str, *dependencies: str) -> dict[str, object]:
    return {"channels": [upstream_url], "dependencies": list(dependencies), "targets": ["linux-64"]}


def solved(s: Secured, upstream_url: str, *dependencies: str) -> dict:
    response = s.http.post(
        "/api/v1/solves", json=solve_body(upstream_url, *dependencies), headers=bearer(s.solve)
    )
    assert response.status_code in (200, 202), response.text
    return wait_for_solve(s.http, response.json()["id"])


# --- serve says who may write ------------------------------------------------------------


def test_serve_says_who_may_write(secured: Secured, embedded: Service) -> None:
    assert "auth: writes need an API token (CONDARCHIVE_AUTH=token); reads are public" in (
        secured.service.logs()
    )
    assert "auth: off (CONDARCHIVE_AUTH=none): open to anyone who can reach 127.0.0.1" in (
        embedded.logs()
    )


def test_open_service_on_a_public_address_is_warned_about() -> None:
    """Not started for real: binding a test to 0.0.0.0 would expose it."""
    warning = auth.auth_notice("none", True, "0.0.0.0")
    assert warning.startswith("WARNING: auth is off") and "CONDARCHIVE_AUTH=token" in warning
    assert auth.auth_notice("none", True, "::1").startswith("auth: off")


# --- writes need a token with the right scope ---------------------------------------------

WRITES = [
    ("POST", "/api/v1/solves", {"channels": ["x"], "dependencies": ["y"]}),
    ("POST", "/api/v1/locks/import", {"content": "@EXPLICIT\n"}),
    ("POST", "/api/v1/locks/" + "0" * 64 + "/archive", None),
    ("DELETE", "/api/v1/solves/" + "0" * 32, None),
    ("POST", "/api/v1/archive/verify", None),
    ("GET", "/api/v1/admin/proxy", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[w[1] for w in WRITES])
def test_writes_without_a_token_are_401(
    secured: Secured, method: str, path: str, body: object
) -> None:
    response = secured.http.request(method, path, json=body)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "Authorization: Bearer" in detail and "condarchive token create" in detail
    unknown = secured.http.request(method, path, json=body, headers=bearer("cat_not-a-token"))
    assert unknown.status_code == 401 and "not valid" in unknown.json()["detail"]


def test_reads_are_public(secured: Secured) -> None:
    for path in ("/api/v1/locks", "/", "/api/v1/archive/channels", "/api/v1/health"):
        assert secured.http.get(path).status_code == 200, path
    assert secured.http.get("/l/" + "ab" * 32).status_code == 404


def test_each_scope_does_its_own_writes(secured: Secured, upstream_url: str) -> None:
    s = secured
    job = solved(s, upstream_url, "numlib>=1.26")
    assert job["status"] == "succeeded", job
    lock_id = job["lock_id"]
    explicit = s.http.get(f"/l/{lock_id}/explicit/linux-64.txt").text
    content = {"content": explicit}

    refused = s.http.post("/api/v1/locks/import", json=content, headers=bearer(s.solve))
    assert refused.status_code == 403, refused.text
    assert "has scope 'solve'; this needs scope 'import'" in refused.json()["detail"]
    imported = s.http.post("/api/v1/locks/import", json=content, headers=bearer(s.imports))
    assert imported.status_code in (200, 201), imported.text
    assert imported.json()["lock_id"] == lock_id

    body = solve_body(upstream_url, "pyutil")
    assert s.http.post("/api/v1/solves", json=body, headers=bearer(s.imports)).status_code == 403
    assert s.http.post("/api/v1/solves", json=body, headers=bearer(s.admin)).status_code in (
        200,
        202,
    )
    archive = f"/api/v1/locks/{lock_id}/archive"
    assert s.http.post(archive, headers=bearer(s.imports)).status_code == 403
    assert s.http.post(archive, headers=bearer(s.solve)).status_code in (200, 202)


def test_admin_deletes_failed_jobs_only(secured: Secured, upstream_url: str) -> None:
    s = secured
    failed = solved(s, upstream_url, "conflict-a")
    assert failed["status"] == "failed", failed
    path = f"/api/v1/solves/{failed['id']}"
    refused = s.http.delete(path, headers=bearer(s.solve))
    assert refused.status_code == 403 and "needs scope 'admin'" in refused.json()["detail"]
    assert s.http.delete(path, headers=bearer(s.admin)).status_code == 204
    assert s.http.get(path).status_code == 404
    assert s.http.delete(path, headers=bearer(s.admin)).status_code == 404

    succeeded = solved(s, upstream_url, "libfoo")
    kept = s.http.delete(f"/api/v1/solves/{succeeded['id']}", headers=bearer(s.admin))
    assert kept.status_code == 409 and "only failed jobs" in kept.json()["detail"]


def test_admin_reruns_verification(secured: Secured) -> None:
    s = secured
    assert s.http.post("/api/v1/archive/verify", headers=bearer(s.solve)).status_code == 403
    queued = s.http.post("/api/v1/archive/verify", headers=bearer(s.admin))
    assert queued.status_code == 202, queued.text
    assert queued.json()["links"]["report"].endswith("/api/v1/archive/verify")
    deadline = time.monotonic() + 60
    report = s.http.get("/api/v1/archive/verify")
    while report.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
        report = s.http.get("/api/v1/archive/verify")
    assert report.status_code == 200, "the worker did not run the verify task"
    assert report.json()["summary"]["ok"] is True


def test_admin_reads_proxy_configuration(secured: Secured, upstream_url: str) -> None:
    s = secured
    assert s.http.get("/api/v1/admin/proxy", headers=bearer(s.solve)).status_code == 403
    config = s.http.get("/api/v1/admin/proxy", headers=bearer(s.admin)).json()
    assert config["channels"] == [
        {"name": "up", "upstream": upstream_url, "url": f"{s.service.url}/channels/up"}
    ]


# --- the token commands -------------------------------------------------------------------


def test_token_create_list_revoke(secured: Secured, upstream_url: str) -> None:
    s = secured
    name = f"lab-{uuid.uuid4().hex[:8]}"
    created = condarchive(s.service, "token", "create", "--name", name)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout.count("\n") == 1, "only the token goes to stdout"
    assert "shown only now" in created.stderr

    body = solve_body(upstream_url, "libfoo", "pyutil")
    assert s.http.post("/api/v1/solves", json=body, headers=bearer(token)).status_code in (200, 202)

    listed = condarchive(s.service, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[name]["scope"] == "solve" and rows[name]["revoked_at"] is None
    assert rows[name]["last_used_at"] is not None
    assert token not in listed.stdout and hashlib.sha256(token.encode()).hexdigest() not in (
        listed.stdout
    )
    table = condarchive(s.service, "token", "list")
    assert name in table.stdout and "last used" in table.stdout

    revoked = condarchive(s.service, "token", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    refused = s.http.post("/api/v1/solves", json=body, headers=bearer(token))
    assert refused.status_code == 401, "a revoked token must be refused at once"
    assert refused.json()["detail"] == f"the API token {name!r} has been revoked"
    listed = json.loads(condarchive(s.service, "token", "list", "--json").stdout)
    assert next(r for r in listed if r["name"] == name)["revoked_at"] is not None

    again = condarchive(s.service, "token", "revoke", name)
    assert again.returncode == 2 and "revoked already" in again.stderr
    unknown = condarchive(s.service, "token", "revoke", "nobody-" + uuid.uuid4().hex)
    assert unknown.returncode == 2 and "no token named" in unknown.stderr
    taken = condarchive(s.service, "token", "create", "--name", name)
    assert taken.returncode == 2 and "exists already" in taken.stderr
    bad_scope = condarchive(s.service, "token", "create", "--name", "x", "--scope", "root")
    assert bad_scope.returncode == 2 and "invalid choice" in bad_scope.stderr
    bad_name = condarchive(s.service, "token", "create", "--name", "a b/c")
    assert bad_name.returncode == 2 and "must be 1-128" in bad_name.stderr


def test_tokens_are_stored_hashed(secured: Secured) -> None:
    name = f"hashed-{uuid.uuid4().hex[:8]}"
    token = new_token(secured.service, "solve", name)
    database = Path(secured.service.env["CONDARCHIVE_DATA_DIR"]) / "condarchive.sqlite"
    with sqlite3.connect(database) as db:
        (stored,) = db.execute(
            "SELECT token_hash FROM api_tokens WHERE name = ?", (name,)
        ).fetchone()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    for path in database.parent.glob("condarchive.sqlite*"):  # the WAL too
        assert token.encode() not in path.read_bytes()


def test_cli_scopes_match_the_server() -> None:
    assert cli_tokens.SCOPES == auth.SCOPES


# --- the client commands send CONDARCHIVE_TOKEN -------------------------------------------


def test_cli_sends_the_token(secured: Secured, upstream_url: str, tmp_path: Path) -> None:
    s = secured
    server = ["--server", s.service.url]
    args = ["lock", "--spec", "timely", "-c", upstream_url, "-t", "linux-64", *server]
    without = condarchive(s.service, *args)
    assert without.returncode == 2 and "401" in without.stderr and "API token" in without.stderr
    locked = condarchive(s.service, *args, token=s.solve)
    assert locked.returncode == 0, locked.stderr
    lock_id = locked.stdout.split()[0]

    exported = tmp_path / "linux-64.txt"
    out = condarchive(
        s.service,
        "export",
        lock_id,
        "-f",
        "explicit",
        "-t",
        "linux-64",
        "-o",
        str(exported),
        *server,
    )
    assert out.returncode == 0, out.stderr
    refused = condarchive(s.service, "import", str(exported), *server, token=s.solve)
    assert refused.returncode == 2 and "needs scope 'import'" in refused.stderr
    imported = condarchive(s.service, "import", str(exported), *server, token=s.imports)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split()[0] == lock_id


# --- reads that need a token --------------------------------------------------------------


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory, upstream: ChannelServer) -> Iterator[Service]:
    service = start_service(
        tmp_path_factory.mktemp("auth-private"),
        upstream.url,
        auth="token",
        public_reads="false",
    )
    yield service
    assert service.server_errors() == []
    stop_service(service)


def test_reads_need_a_token_when_not_public(private: Service, upstream_url: str) -> None:
    assert "reads need a token too (CONDARCHIVE_PUBLIC_READS=false)" in private.logs()
    token = new_token(private, "solve")
    with httpx.Client(base_url=private.url, timeout=60) as http:
        for path in ("/api/v1/locks", "/", "/l/" + "ab" * 32, "/api/v1/archive/channels"):
            response = http.get(path)
            assert response.status_code == 401, path
            assert "CONDARCHIVE_PUBLIC_READS=false" in response.json()["detail"]
        assert http.get("/api/v1/health").status_code == 200
        assert http.get("/api/v1/locks", headers=bearer(token)).status_code == 200
    with httpx.Client(base_url=private.url, timeout=60, headers=bearer(token)) as authed:
        response = authed.post("/api/v1/solves", json=solve_body(upstream_url, "libfoo"))
        job = wait_for_solve(authed, response.json()["id"])
        assert job["status"] == "succeeded", job
    lock_path = f"/api/v1/locks/{job['lock_id']}"
    with httpx.Client(base_url=private.url, timeout=60) as http:
        assert http.get(lock_path, headers=bearer(token)).status_code == 200
        # The lock's JSON is now cached in the server; the cache is behind the token check.
        refused = http.get(lock_path)
        assert refused.status_code == 401 and "PUBLIC_READS" in refused.json()["detail"]
        assert http.get(lock_path, headers=bearer("cat_" + "x" * 43)).status_code == 401
    shown = condarchive(private, "show", job["lock_id"], "--server", private.url, token=token)
    assert shown.returncode == 0 and "libfoo" in shown.stdout, shown.stderr
    hidden = condarchive(private, "show", job["lock_id"], "--server", private.url)
    assert hidden.returncode == 2 and "CONDARCHIVE_PUBLIC_READS=false" in hidden.stderr


# --- the distributed default ---------------------------------------------------------------


@pytest.mark.distributed
def test_distributed_mode_requires_tokens_by_default(
    tmp_path: Path, upstream: ChannelServer, upstream_url: str, fresh_postgres_url: str
) -> None:
    service = start_service(
        tmp_path,
        upstream.url,
        no_worker=True,
        database_url=fresh_postgres_url,
        broker_url=REDIS_URL,
        auth="",  # the default, as an operator gets it
    )
    try:
        assert "auth: writes need an API token (CONDARCHIVE_AUTH=token)" in service.logs()
        body = solve_body(upstream_url, "libfoo")
        with httpx.Client(base_url=service.url, timeout=30) as http:
            assert http.post("/api/v1/solves", json=body).status_code == 401
            token = new_token(service, "solve")  # on Postgres, by the same command
            accepted = http.post("/api/v1/solves", json=body, headers=bearer(token))
            assert accepted.status_code == 202, accepted.text
    finally:
        stop_service(service)
        import redis

        redis.Redis.from_url(REDIS_URL).delete(service.env["CONDARCHIVE_QUEUE"])


def test_no_token_leaves_the_process() -> None:
    """The CLI sends CONDARCHIVE_TOKEN only to the condarchive server's own origin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    code = (
        "from app.auth.client import auth_headers_for as h;"
        "print(h('http://a:1/x', 'http://a:1'), h('http://b:1/x', 'http://a:1'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "CONDARCHIVE_TOKEN": "cat_t"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "{'Authorization': 'Bearer cat_t'} {}"


# --- the migration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.distributed)]
)
def test_migration_0003_matches_the_models(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`alembic check` finds nothing to add after upgrading, and 0003 downgrades cleanly."""
    from alembic import command

    from app.db.migrate import alembic_config

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrated.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.check(config)
    command.downgrade(config, "0002")
    command.upgrade(config, "head")
    command.check(config)
