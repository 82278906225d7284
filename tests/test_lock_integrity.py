"""A lock is exactly what was resolved, for everyone (issue 12, item 2).

Against the real running service (`condarchive serve` with its worker), with channels
served from 127.0.0.1:

* a channel whose repodata sets `info.base_url` into another allowlisted channel, listing
  that channel's real file with forged metadata, fails the solve (kind `channel`);
* two locks holding the same file (url and sha256) with different metadata (upstream
  patched its repodata between two solves) each render their own fields in every format,
  and each stored lock re-hashes to its id (`condarchive verify`);
* a stored lock changed behind the service's back is reported by `condarchive verify`;
* two different requests reaching one lock each see their own spec text and name;
* migration 0004 gives v1 locks their v2 ids and keeps the old ids resolving.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import start_service, stop_service
from tests.support.archive import cli
from tests.support.channel_server import ChannelServer
from tests.support.packages import PackageSpec, build_channel
from tests.support.service import Service, submit_and_wait

pytestmark = pytest.mark.process

BROWSER = {"accept": "text/html"}


def without_zst_and_shards(channel_dir: Path) -> None:
    """Serve only repodata.json, so an edit of it is what every client reads."""
    for path in channel_dir.glob("*/repodata.json.zst"):
        path.unlink()
    for path in channel_dir.glob("*/repodata_shards.msgpack.zst"):
        path.unlink()


def edit_repodata(channel_dir: Path, subdir: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = channel_dir / subdir / "repodata.json"
    repodata = json.loads(path.read_text())
    edit(repodata)
    path.write_text(json.dumps(repodata))


def records(repodata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChannelServer]:
    root = tmp_path_factory.mktemp("integrity-channels")
    origin = build_channel(
        root / "origin",
        [
            PackageSpec("libfoo", "1.1", "h0_0", 0, "linux-64", fmt=".tar.bz2"),
            PackageSpec("numlib", "1.26.4", "h0_0", 0, "linux-64", depends=["libfoo >=1.1"]),
            PackageSpec("helper", "1.0", "0", 0, "noarch"),
            PackageSpec("patchme", "1.0", "0", 0, "noarch"),
        ],
        shards=False,
    )
    without_zst_and_shards(origin)
    # The hostile channel: its repodata points base_url into `origin` and lists origin's
    # real numlib file (true sha256 and size) with a forged version, depends and md5.
    hostile = build_channel(root / "hostile", [PackageSpec("decoy", "1.0", "0", 0, "linux-64")])
    without_zst_and_shards(hostile)
    real = json.loads((origin / "linux-64" / "repodata.json").read_text())

    def forge(repodata: dict[str, Any]) -> None:
        numlib = dict(real["packages.conda"]["numlib-1.26.4-h0_0.conda"])
        numlib.update(version="9.9.9", depends=[], md5="0" * 32)
        repodata["info"]["base_url"] = "../../origin/linux-64/"
        repodata["repodata_version"] = 2
        repodata["packages"] = {}
        repodata["packages.conda"] = {"numlib-1.26.4-h0_0.conda": numlib}

    edit_repodata(hostile, "linux-64", forge)
    with ChannelServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, channels: ChannelServer) -> Iterator[Service]:
    # TTL 0: every solve re-validates repodata, so an upstream edit is seen at once; no
    # dedupe window, so the same request after the edit solves again.
    started = start_service(
        tmp_path_factory.mktemp("integrity-service"),
        channels.url,
        repodata_ttl="0",
        dedupe_window="0",
    )
    yield started
    stop_service(started)


@pytest.fixture(scope="module")
def http(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        yield client


def solve(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    return submit_and_wait(http, {"targets": ["linux-64"], **body})


def package(lock: dict[str, Any], name: str) -> dict[str, Any]:
    (target,) = lock["targets"].values()
    return next(p for p in target["packages"] if p["name"] == name)


# --- a channel's base_url may only point inside the same channel (item 6) ---------------


def test_base_url_into_another_channel_fails_the_solve(
    http: httpx.Client, channels: ChannelServer, service: Service
) -> None:
    origin, hostile = channels.channel_url("origin"), channels.channel_url("hostile")
    job = solve(http, {"channels": [hostile], "dependencies": ["numlib"]})
    assert job["status"] == "failed", job  # before the fix: a lock with forged metadata
    error = job["error"]
    assert error["kind"] == "channel", error
    assert hostile in error["message"]  # the channel
    assert f"{origin}/linux-64" in error["message"]  # the base_url it set
    assert "numlib-1.26.4-h0_0.conda" in error["message"]  # the record
    assert error["detail"]["base_url"] == f"{origin}/linux-64"

    # The real channel's lock shows the real fields, whatever the hostile one listed.
    honest = solve(http, {"channels": [origin], "dependencies": ["numlib"]})
    assert honest["status"] == "succeeded", honest
    lock = http.get(f"/api/v1/locks/{honest['lock_id']}").json()
    data = (channels.root / "origin" / "linux-64" / "numlib-1.26.4-h0_0.conda").read_bytes()
    numlib = package(lock, "numlib")
    assert (numlib["version"], numlib["depends"]) == ("1.26.4", ["libfoo >=1.1"])
    assert numlib["md5"] == hashlib.md5(data).hexdigest()
    assert service.server_errors() == []


# --- one file, two metadata: each lock renders its own (items 1, 2, 3, 7) ----------------


def rendered(http: httpx.Client, lock_id: str) -> dict[str, str]:
    files = {
        "env": f"/l/{lock_id}/environment.yml",
        "conda-lock": f"/l/{lock_id}/conda-lock.yml",
        "pixi": f"/l/{lock_id}/pixi.lock",
        "explicit": f"/l/{lock_id}/explicit/linux-64.txt",
        "json": f"/l/{lock_id}.json",
    }
    out = {}
    for key, path in files.items():
        response = http.get(path)
        assert response.status_code == 200, (path, response.text)
        out[key] = response.text
    return out


def conda_lock_entry(text: str, name: str) -> dict[str, Any]:
    return next(p for p in yaml.safe_load(text)["package"] if p["name"] == name)


def pixi_entry(text: str, filename: str) -> dict[str, Any]:
    return next(p for p in yaml.safe_load(text)["packages"] if p["conda"].endswith(filename))


def test_same_file_with_other_metadata_renders_its_own_fields(
    http: httpx.Client, channels: ChannelServer, service: Service
) -> None:
    """Upstream patches a record's metadata between two solves (as repodata patches do, or
    a hostile upstream would): the file (url, sha256) is the same, the fields are not."""
    origin_dir = channels.root / "origin"
    origin = channels.channel_url("origin")
    filename = "patchme-1.0-0.conda"
    data = (origin_dir / "noarch" / filename).read_bytes()
    true_md5 = hashlib.md5(data).hexdigest()
    body = {"channels": [origin], "dependencies": ["patchme"]}

    first = solve(http, body)
    assert first["status"] == "succeeded", first

    def patch(repodata: dict[str, Any]) -> None:
        record = records(repodata)[filename]
        record.update(version="1.0.1", depends=["helper"], constrains=["libfoo <2"])

    edit_repodata(origin_dir, "noarch", patch)
    second = solve(http, body)
    assert second["status"] == "succeeded", second

    def forge_md5(repodata: dict[str, Any]) -> None:
        records(repodata)[filename]["md5"] = "f" * 32

    edit_repodata(origin_dir, "noarch", forge_md5)
    third = solve(http, body)
    assert third["status"] == "succeeded", third

    ids = [first["lock_id"], second["lock_id"], third["lock_id"]]
    assert len(set(ids)) == 3, ids  # they render differently, so they are different locks
    one, two, three = (rendered(http, lock_id) for lock_id in ids)

    # environment.yml: name=version=build of each lock's own record.
    assert "patchme=1.0=0" in one["env"] and "helper" not in one["env"]
    assert "patchme=1.0.1=0" in two["env"] and "helper=1.0=0" in two["env"]
    # conda-lock.yml: version, dependencies and hashes.
    entry = conda_lock_entry(one["conda-lock"], "patchme")
    assert (entry["version"], entry["dependencies"]) == ("1.0", {})
    assert entry["hash"]["md5"] == true_md5
    entry = conda_lock_entry(two["conda-lock"], "patchme")
    assert (entry["version"], entry["dependencies"]) == ("1.0.1", {"helper": ""})
    assert conda_lock_entry(three["conda-lock"], "patchme")["hash"]["md5"] == "f" * 32
    # pixi.lock: depends, constrains, md5.
    assert "depends" not in pixi_entry(one["pixi"], filename)
    assert pixi_entry(two["pixi"], filename)["depends"] == ["helper"]
    assert pixi_entry(two["pixi"], filename)["constrains"] == ["libfoo <2"]
    assert pixi_entry(one["pixi"], filename)["md5"] == true_md5
    assert pixi_entry(three["pixi"], filename)["md5"] == "f" * 32
    # explicit: the md5 fragment is each lock's own.
    assert f"/{filename}#{true_md5}" in one["explicit"]
    assert f"/{filename}#{true_md5}" in two["explicit"]
    assert f"/{filename}#{'f' * 32}" in three["explicit"]
    for document in (json.loads(one["json"]), json.loads(two["json"])):
        assert package(document, "patchme")["sha256"] == hashlib.sha256(data).hexdigest()

    # Every stored lock hashes back to its id.
    result = cli(service, "verify", "--no-upstream", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["locks"]["checked"] >= 3 and report["locks"]["mismatched"] == []

    # The same bytes are archived once: both entries of one and two point at one blob.
    db = Path(service.env["CONDARCHIVE_DATA_DIR"]) / "condarchive.sqlite"
    for _ in range(100):
        with sqlite3.connect(db) as conn:
            blobs = conn.execute(
                "SELECT e.state, e.blob_sha256 FROM archive_entries e "
                "JOIN packages p ON p.id = e.package_id WHERE p.filename = ?",
                (filename,),
            ).fetchall()
        if sum(state == "archived" for state, _ in blobs) >= 2:
            break
        time.sleep(0.2)
    archived = {sha for state, sha in blobs if state == "archived"}
    assert archived == {hashlib.sha256(data).hexdigest()}, blobs
    assert service.server_errors() == []


# --- condarchive verify re-hashes every lock (item 3) ------------------------------------


def test_verify_reports_a_lock_changed_in_the_database(
    http: httpx.Client, channels: ChannelServer, service: Service
) -> None:
    job = solve(http, {"channels": [channels.channel_url("origin")], "dependencies": ["helper"]})
    assert job["status"] == "succeeded", job
    lock_id = job["lock_id"]
    db = Path(service.env["CONDARCHIVE_DATA_DIR"]) / "condarchive.sqlite"
    with sqlite3.connect(db) as conn:
        (package_id,) = conn.execute(
            "SELECT p.id FROM packages p JOIN lock_packages lp ON lp.package_id = p.id "
            "WHERE lp.lock_id = ? AND p.name = 'helper'",
            (lock_id,),
        ).fetchone()
        conn.execute("UPDATE packages SET version = '6.6.6' WHERE id = ?", (package_id,))
    try:
        result = cli(service, "verify", "--no-upstream")
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"lock changed: {lock_id} now hashes to " in result.stdout
        assert f"package row changed: {package_id} (" in result.stdout
        report = json.loads(cli(service, "verify", "--no-upstream", "--json").stdout)
        assert report["summary"]["ok"] is False
        assert lock_id in [m["lock_id"] for m in report["locks"]["mismatched"]]
    finally:  # put it back, for the other tests of this service
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE packages SET version = '1.0' WHERE id = ?", (package_id,))
    assert cli(service, "verify", "--no-upstream").returncode == 0


# --- what was requested belongs to each request (item 4) ---------------------------------


def test_each_request_sees_its_own_spec(
    http: httpx.Client, channels: ChannelServer, service: Service
) -> None:
    origin = channels.channel_url("origin")

    def environment(name: str) -> str:
        return (
            f"name: {name}\nchannels:\n  - {origin}\n"
            f"dependencies:\n  - numlib  # {name}'s private note\n"
        )

    alpha = solve(http, {"environment": environment("alpha")})
    beta = solve(http, {"environment": environment("beta")})
    assert alpha["status"] == beta["status"] == "succeeded", (alpha, beta)
    assert alpha["lock_id"] == beta["lock_id"]  # one result, one lock
    assert alpha["id"] != beta["id"]  # but each request is its own job
    lock_id = alpha["lock_id"]
    assert beta["links"]["page"].endswith(f"/l/{lock_id}?job={beta['id']}")

    beta_page = http.get(f"/l/{lock_id}?job={beta['id']}", headers=BROWSER).text
    assert "beta&#39;s private note" in beta_page and '<h1 id="title">beta <' in beta_page
    assert "alpha" not in beta_page
    alpha_page = http.get(f"/l/{lock_id}?job={alpha['id']}", headers=BROWSER).text
    assert "alpha&#39;s private note" in alpha_page and "beta" not in alpha_page
    # Without a job, the page shows the lock and lists every request, none as "the" spec.
    page = http.get(f"/l/{lock_id}", headers=BROWSER).text
    assert "Requests that produced this lock" in page
    assert "alpha&#39;s private note" in page and "beta&#39;s private note" in page

    lock = http.get(f"/api/v1/locks/{lock_id}").json()
    assert lock["spec"] == {"channels": [origin]}  # nobody's name or text
    env = http.get(f"/l/{lock_id}/environment.yml").text
    assert yaml.safe_load(env)["name"] == f"lock-{lock_id[:12]}"
    env = http.get(f"/l/{lock_id}/environment.yml?job={beta['id']}").text
    assert yaml.safe_load(env)["name"] == "beta"
    other = http.get(f"/l/{lock_id}?job={'0' * 32}", headers=BROWSER)
    assert other.status_code == 404
    assert service.server_errors() == []


# --- migration 0004 (item 5) ---------------------------------------------------------------


def _v1_id(targets: dict[str, Any]) -> str:
    canonical = {"version": 1, "targets": targets}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_v1_database(url: str) -> dict[str, str]:
    """A database at revision 0003 holding one v1 lock, a job that made it and its archive."""
    from alembic import command

    from app.db.migrate import alembic_config
    from app.db.session import make_engine

    command.upgrade(alembic_config(url), "0003")
    channel = "https://conda.example.org/chan"
    url_of = f"{channel}/noarch/tool-1.0-0.conda"
    sha256, md5 = "a" * 64, "b" * 32
    record = {
        "name": "tool",
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "depends": ["python >=3"],
        "subdir": "noarch",
        "url": url_of,
        "fn": "tool-1.0-0.conda",
        "channel": channel,
        "sha256": sha256,
        "md5": md5,
        "size": 10,
        "noarch": "generic",
    }
    v1_targets = {
        "linux-64": {
            "platform": "linux-64",
            "virtual_packages": [],
            "packages": [{"url": url_of, "sha256": sha256, "md5": md5, "size": 10}],
        }
    }
    old_id = _v1_id(v1_targets)
    now = datetime.now(UTC)
    submitted = {"dependencies": ["tool"], "channels": [channel]}
    engine = make_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(
            t["packages"]
            .insert()
            .values(
                id=1,
                url=url_of,
                content_key=sha256,
                sha256=sha256,
                md5=md5,
                size=10,
                name="tool",
                version="1.0",
                build="0",
                build_number=0,
                channel=channel,
                subdir="noarch",
                filename="tool-1.0-0.conda",
                record=record,
            )
        )
        conn.execute(
            t["locks"]
            .insert()
            .values(
                id=old_id,
                created_at=now,
                spec={
                    "channels": [channel],
                    "dependencies": ["tool"],
                    "name": "first-requester",
                    "submitted": submitted,
                },
                spec_hash="c" * 64,
                provenance={"solver": {"name": "py-rattler"}},
            )
        )
        conn.execute(
            t["lock_targets"]
            .insert()
            .values(lock_id=old_id, name="linux-64", platform="linux-64", virtual_packages=[])
        )
        conn.execute(
            t["lock_packages"].insert().values(lock_id=old_id, target="linux-64", package_id=1)
        )
        conn.execute(
            t["solve_jobs"]
            .insert()
            .values(
                id="d" * 32,
                request_hash="e" * 64,
                spec_hash="c" * 64,
                request={
                    "spec": {"channels": [channel], "dependencies": ["tool"]},
                    "name": "first-requester",
                    "submitted": submitted,
                },
                status="succeeded",
                progress={},
                lock_id=old_id,
                attempts=1,
                created_at=now,
                finished_at=now,
            )
        )
        conn.execute(
            t["lock_archives"]
            .insert()
            .values(lock_id=old_id, status="done", runs=1, requested_at=now)
        )
    engine.dispose()
    return {"old_id": old_id, "job_id": "d" * 32}


def check_migrated(url: str, old_id: str, job_id: str) -> str:
    from alembic import command

    from app.db.migrate import alembic_config
    from app.db.models import Lock
    from app.db.session import make_engine
    from app.locks.refs import resolve
    from app.locks.store import find_lock, lock_requests, stored_lock_id, verify_locks

    config = alembic_config(url)
    command.upgrade(config, "head")
    command.check(config)  # the migrated schema is the models'
    engine = make_engine(url)
    try:
        with sa.orm.Session(engine) as session:
            (lock,) = session.scalars(sa.select(Lock)).all()
            new_id = lock.id
            assert new_id != old_id
            assert stored_lock_id(session, lock) == new_id  # its v2 id, from what is stored
            assert lock.spec == {"channels": ["https://conda.example.org/chan"]}
            assert find_lock(session, old_id) is lock
            assert resolve(session, old_id).lock is lock
            assert resolve(session, old_id[:10]).lock is lock
            assert verify_locks(session)["mismatched"] == []
            (asked,) = lock_requests(session, new_id)
            assert (asked["job_id"], asked["name"]) == (job_id, "first-requester")
            conn = session.connection()
            assert conn.execute(sa.text("SELECT lock_id FROM solve_jobs")).scalar() == new_id
            assert conn.execute(sa.text("SELECT lock_id FROM lock_archives")).scalar() == new_id
            assert conn.execute(sa.text("SELECT count(*) FROM lock_targets")).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM lock_packages")).scalar() == 1
    finally:
        engine.dispose()
    return new_id


def test_migration_0004_on_sqlite_keeps_old_ids_resolving(
    tmp_path: Path, channels: ChannelServer
) -> None:
    data = tmp_path / "svc" / "data"
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'condarchive.sqlite'}"
    v1 = write_v1_database(url)
    new_id = check_migrated(url, v1["old_id"], v1["job_id"])
    served = start_service(tmp_path / "svc", channels.url)
    try:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            api = client.get(f"/api/v1/locks/{v1['old_id']}")
            assert api.status_code == 200 and api.json()["id"] == new_id
            page = client.get(f"/l/{v1['old_id']}", headers=BROWSER)
            assert page.status_code == 307 and page.headers["location"] == f"/l/{new_id}"
            short = client.get(f"/l/{v1['old_id'][:12]}/pixi.lock")
            assert short.status_code == 307
            assert short.headers["location"] == f"/l/{new_id}/pixi.lock"
            job = client.get(f"/api/v1/solves/{v1['job_id']}").json()
            assert job["lock_id"] == new_id
            archive = client.get(f"/api/v1/locks/{v1['old_id']}/archive")
            assert archive.status_code == 200, archive.text
        shown = cli(served, "show", v1["old_id"], "--server", served.url)
        assert shown.returncode == 0, shown.stderr
        assert "tool" in shown.stdout
        assert served.server_errors() == []
    finally:
        stop_service(served)


@pytest.mark.distributed
def test_migration_0004_on_postgres(fresh_postgres_url: str) -> None:
    v1 = write_v1_database(fresh_postgres_url)
    check_migrated(fresh_postgres_url, v1["old_id"], v1["job_id"])
