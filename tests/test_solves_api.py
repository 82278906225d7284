"""The solve API end to end: HTTP calls, polling, and the lock read back, against the test
channel served over HTTP.

Most tests share the session's in-process service (tasks run inline, tests/support/
inprocess.py). Two more are made here for settings that must differ: one with a dedupe
window of 0 that also allows a loopback port where nothing listens, and one with a solve
timeout of 2 seconds. The tests that watch a job while a worker runs it need a worker
beside the API: they use `condarchive serve` as a subprocess (marked `process`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_service, stop_service
from tests.support import testchan
from tests.support.channel_server import ChannelServer
from tests.support.hardchan import write_pigeonhole_channel
from tests.support.inprocess import InProcessService, inprocess_service
from tests.support.packages import backdate_index, build_channel
from tests.support.service import Service, free_port, submit_and_wait, wait_for_solve

CUDA = "__cuda"


def unique_target(platform: str = "linux-64", **extra: Any) -> dict[str, Any]:
    """A target whose name no other test uses, so its request is new to the session."""
    return {"name": f"t-{uuid.uuid4().hex[:10]}", "platform": platform, **extra}


def packages_of(lock: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in lock["targets"][target]["packages"]}


def get_lock(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    assert job["status"] == "succeeded", json.dumps(job)
    response = client.get(f"/api/v1/locks/{job['lock_id']}")
    assert response.status_code == 200, response.text
    return response.json()


def failed_with(job: dict[str, Any], kind: str) -> dict[str, Any]:
    assert job["status"] == "failed", job
    assert job["error"]["kind"] == kind, job["error"]
    assert job["lock_id"] is None
    return job["error"]


# --- services with other settings ---------------------------------------------------------


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def windowless(
    tmp_path_factory: pytest.TempPathFactory, channel_url: str, dead_url: str
) -> Iterator[InProcessService]:
    """Dedupe window 0; allows only the test channel and the dead loopback port."""
    with inprocess_service(
        tmp_path_factory.mktemp("windowless"),
        f"{channel_url},{dead_url}",
        dedupe_window="0",
    ) as service:
        yield service
        assert service.server_errors() == []


@pytest.fixture(scope="module")
def impatient(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[Service]:
    """A solve timeout of 2 seconds (long enough to fetch the test channel many times over,
    far too short for the pigeonhole channel); nothing here is ever archived."""
    service = start_service(
        tmp_path_factory.mktemp("impatient"),
        channel_server.url,
        solve_timeout="2",
        archive="off",
    )
    yield service
    errors = service.server_errors()
    stop_service(service)
    assert errors == []


@pytest.fixture(scope="module")
def impatient_inprocess(
    tmp_path_factory: pytest.TempPathFactory, channel_server: ChannelServer
) -> Iterator[InProcessService]:
    """`impatient`'s settings in process."""
    with inprocess_service(
        tmp_path_factory.mktemp("impatient-inprocess"),
        channel_server.url,
        solve_timeout="2",
        archive="off",
    ) as service:
        yield service
        assert service.server_errors() == []


@pytest.fixture(autouse=True)
def no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Never a 5xx: the session's service (embedded for a process test, in-process
    otherwise) answered none during the test."""
    name = "embedded" if "embedded" in request.fixturenames else "inprocess"
    service: Service | InProcessService = request.getfixturevalue(name)
    before = len(service.server_errors())
    yield
    assert service.server_errors()[before:] == []


@pytest.fixture
def http_of() -> Iterator[Any]:
    """`http_of(service)`: an HTTP client for one of this module's own services."""
    with ExitStack() as clients:

        def make(service: Service | InProcessService) -> httpx.Client:
            if isinstance(service, InProcessService):
                return clients.enter_context(service.client())
            return clients.enter_context(httpx.Client(base_url=service.url, timeout=30))

        yield make


# --- the contract: POST, GET, the lock ------------------------------------------------------


def test_post_answers_202_with_id_status_links(
    api: httpx.Client, inprocess: InProcessService, channel_url: str
) -> None:
    response = api.post(
        "/api/v1/solves",
        json={"channels": [channel_url], "dependencies": ["libfoo"], "targets": [unique_target()]},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["links"]["self"] == f"{inprocess.url}/api/v1/solves/{job['id']}"
    assert response.headers["location"] == f"/api/v1/solves/{job['id']}"
    done = wait_for_solve(api, job["id"])
    assert done["status"] == "succeeded" and done["stage"] == "done"
    assert set(done["progress"].values()) == {"done"}
    assert done["links"]["lock"].endswith(f"/api/v1/locks/{done['lock_id']}")
    assert done["links"]["permalink"].endswith(f"/l/{done['lock_id']}")


def test_lock_has_every_field_of_the_contract(
    api: httpx.Client, channel_url: str, channel_server: ChannelServer
) -> None:
    job = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["numlib>=1.20,<2", "pyutil", "tzdata-lite", "torchlike"],
            "targets": ["linux-64", "osx-arm64"],
        },
    )
    lock = get_lock(api, job)
    assert {"id", "created_at", "spec", "targets", "provenance"} <= set(lock)
    assert lock["id"] == job["lock_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lock["created_at"])
    assert lock["spec"] == {"channels": [channel_url]}  # only what the lock id covers
    # What was asked is the request's (the job's), not the lock's.
    (asked,) = api.get(f"/api/v1/locks/{lock['id']}/requests?job={job['id']}").json()["items"]
    assert asked["spec"]["dependencies"] == sorted(
        ["numlib >=1.20,<2", "pyutil", "tzdata-lite", "torchlike"]
    )
    assert set(lock["targets"]) == {"linux-64", "osx-arm64"}
    fields = {
        "name",
        "version",
        "build",
        "build_number",
        "channel",
        "subdir",
        "url",
        "filename",
        "sha256",
        "md5",
        "size",
        "depends",
        "constrains",
    }
    formats = set()
    for name, target in lock["targets"].items():
        assert {"platform", "virtual_packages", "packages"} <= set(target)
        assert target["platform"] == name
        assert "__glibc=2.28=0" in target["virtual_packages"] or name == "osx-arm64"
        packages = packages_of(lock, name)
        assert set(packages) == {"numlib", "libfoo", "pyutil", "tzdata-lite", "torchlike"}
        assert packages["numlib"]["version"] == "1.26.4"
        assert packages["torchlike"]["build"] == "cpu_0"
        for package in packages.values():
            assert fields <= set(package)
            assert package["channel"] == channel_url
            assert package["subdir"] in (name, "noarch")
            assert package["url"] == f"{channel_url}/{package['subdir']}/{package['filename']}"
            assert package["filename"].startswith(
                f"{package['name']}-{package['version']}-{package['build']}."
            )
            assert isinstance(package["build_number"], int)
            assert isinstance(package["depends"], list)
            # The hashes and size are those of the file the channel serves.
            data = (
                channel_server.root / "testchan" / package["subdir"] / package["filename"]
            ).read_bytes()
            assert package["sha256"] == hashlib.sha256(data).hexdigest()
            assert package["md5"] == hashlib.md5(data).hexdigest()
            assert package["size"] == len(data)
            formats.add(package["filename"].rsplit("-", 1)[1].split(".", 1)[1])
        assert packages["numlib"]["depends"] == ["libfoo >=1.1"]
    assert formats == {"conda", "tar.bz2"}

    provenance = lock["provenance"]
    assert provenance["solver"] == {"name": "py-rattler", "version": version("py-rattler")}
    assert provenance["exclude_newer"] is None
    assert provenance["channel_priority"] == "strict"
    states = {(s["channel"], s["subdir"]): s for s in provenance["repodata"]}
    assert set(states) == {(channel_url, s) for s in ("linux-64", "osx-arm64", "noarch")}
    for (channel, subdir), state in states.items():
        assert state["url"] == f"{channel}/{subdir}/repodata.json"
        assert state["fetched_at"] and state["status"] == 200 and state["etag"]


def test_lock_id_is_the_documented_hash_and_the_same_for_the_same_result(
    api: httpx.Client, channel_url: str
) -> None:
    name = f"same-{uuid.uuid4().hex[:8]}"
    first = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["numlib>=1.20,<2", "pyutil"],
            "targets": [{"name": name, "platform": "linux-64"}],
        },
    )
    second = submit_and_wait(
        api,
        {
            "environment": (
                f"name: different\nchannels:\n  - {channel_url}/\n"
                "dependencies:\n  - pyutil\n  - numlib=1.26\n  - libfoo>=1\n"
            ),
            "targets": [{"name": name, "platform": "linux-64", "virtual_packages": []}],
        },
    )
    assert first["id"] != second["id"] and first["spec_hash"] != second["spec_hash"]
    assert first["lock_id"] == second["lock_id"]
    lock = get_lock(api, first)
    document = api.get(f"/l/{lock['id']}.json").json()  # with the record extras

    def canonical_package(p: dict[str, Any]) -> dict[str, Any]:
        fields = list(lock["targets"][name]["packages"][0])  # the API's package fields
        extras = ("noarch", "timestamp", "license", "track_features")
        return {**{k: p[k] for k in fields}, "extras": {k: p[k] for k in extras if k in p}}

    def dumps(obj: Any) -> str:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    canonical = {
        "version": 2,
        "channels": lock["spec"]["channels"],
        "targets": {
            target_name: {
                "platform": target["platform"],
                "virtual_packages": sorted(target["virtual_packages"]),
                "packages": sorted(
                    (canonical_package(p) for p in target["packages"]),
                    key=lambda p: (p["url"], dumps(p)),
                ),
            }
            for target_name, target in document["targets"].items()
        },
    }
    assert lock["id"] == hashlib.sha256(dumps(canonical).encode()).hexdigest()
    # Written once, and what each request asked stays its own: the second request's
    # spec did not replace the first's, nor is the first's shown as the second's.
    asked = api.get(f"/api/v1/locks/{lock['id']}/requests").json()["items"]
    by_job = {r["job_id"]: r for r in asked}
    assert by_job[first["id"]]["submitted"]["dependencies"] == ["numlib>=1.20,<2", "pyutil"]
    assert by_job[second["id"]]["name"] == "different"
    assert "name: different" in by_job[second["id"]]["submitted"]["environment"]


def test_channel_named_in_a_spec_is_used(api: httpx.Client, channel_url: str) -> None:
    """`URL::name` adds the channel (after the allowlist check) and pins the package to it."""
    job = submit_and_wait(
        api,
        {"dependencies": [f"{channel_url}::numlib 1.26.*"], "targets": ["osx-arm64"]},
    )
    lock = get_lock(api, job)
    assert lock["spec"]["channels"] == [channel_url]
    numlib = packages_of(lock, "osx-arm64")["numlib"]
    assert (numlib["version"], numlib["channel"]) == ("1.26.4", channel_url)


def test_sharded_repodata_and_the_shared_cache_are_used(
    api: httpx.Client, inprocess: InProcessService, channel_url: str, channel_server: ChannelServer
) -> None:
    """The test channel offers CEP-16 shards, so the worker's Gateway fetches those (not
    the whole repodata.json), into the on-disk cache in the data directory."""
    job = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["pyutil"],
            "targets": ["linux-64"],
            "channel_priority": "flexible",
        },
    )
    # Each request keeps its own provenance (the lock's is how it was first made, perhaps
    # by another request that reached the same lock).
    get_lock(api, job)
    requests = api.get(f"/api/v1/locks/{job['lock_id']}/requests", params={"job": job["id"]})
    assert requests.json()["items"][0]["provenance"]["channel_priority"] == "flexible"
    gets = {path for method, path in channel_server.requests if method == "GET"}
    assert "/testchan/noarch/repodata_shards.msgpack.zst" in gets
    assert any(path.startswith("/testchan/noarch/shards/") for path in gets)
    assert "/testchan/noarch/repodata.json" not in gets
    cache = Path(inprocess.env["CONDARCHIVE_DATA_DIR"]) / "repodata-cache"
    assert any(path.is_file() for path in cache.rglob("*"))


def test_zstd_repodata_is_used_without_shards(
    api: httpx.Client, channel_server: ChannelServer
) -> None:
    """A channel with repodata.json.zst but no shards: the Gateway fetches the .zst."""
    name = f"zst-{uuid.uuid4().hex[:8]}"
    libfoo = [spec for spec in testchan.testchan_packages() if spec.name == "libfoo"]
    build_channel(channel_server.root / name, libfoo, shards=False)
    job = submit_and_wait(
        api,
        {
            "channels": [channel_server.channel_url(name)],
            "dependencies": ["libfoo"],
            "targets": ["linux-64"],
        },
    )
    assert packages_of(get_lock(api, job), "linux-64")["libfoo"]["version"] == "1.1"
    gets = {path for method, path in channel_server.requests if method == "GET"}
    assert f"/{name}/linux-64/repodata.json.zst" in gets
    assert f"/{name}/linux-64/repodata.json" not in gets


def test_environment_platforms_are_the_default_targets(api: httpx.Client, channel_url: str) -> None:
    job = submit_and_wait(
        api,
        {
            "environment": (
                f"channels: [{channel_url}]\ndependencies: [pyutil]\n"
                "platforms: [osx-arm64, linux-64]\n"
            )
        },
    )
    assert set(get_lock(api, job)["targets"]) == {"linux-64", "osx-arm64"}


def test_unknown_solve_and_lock_are_404_json(api: httpx.Client) -> None:
    for path in (
        "/api/v1/solves/nope",
        f"/api/v1/solves/{'0' * 32}",
        "/api/v1/solves/%00",
        f"/api/v1/locks/{'0' * 64}",
        "/api/v1/locks/x",
        "/api/v1/locks/%00",
    ):
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "detail" in response.json()


# --- the CUDA rule --------------------------------------------------------------------------


def test_cuda_rule(api: httpx.Client, channel_url: str) -> None:
    """A __cuda target gets the build the channel ranks first; others never a CUDA build."""
    job = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["torchlike", "fftlike"],
            "targets": [
                "linux-64",
                "osx-arm64",
                "linux-64-cuda12",
                {
                    "name": "gpu",
                    "platform": "linux-64",
                    "virtual_packages": ["__cuda=12.4", "__glibc=2.28"],
                },
                {"name": "old-gpu", "platform": "linux-64", "virtual_packages": ["__cuda=11.8"]},
            ],
        },
    )
    lock = get_lock(api, job)
    builds = {
        name: {p: packages_of(lock, name)[p]["build"] for p in ("torchlike", "fftlike")}
        for name in lock["targets"]
    }
    assert builds == {
        # CUDA ranked first by build number (torchlike) and by track_features on the
        # CPU build (fftlike), exactly as mamba picks.
        "linux-64-cuda12": {"torchlike": "cuda124_1", "fftlike": "cuda_0"},
        "gpu": {"torchlike": "cuda124_1", "fftlike": "cuda_0"},
        # torchlike's CUDA build needs __cuda >=12, fftlike's only >=11.8.
        "old-gpu": {"torchlike": "cpu_0", "fftlike": "cuda_0"},
        "linux-64": {"torchlike": "cpu_0", "fftlike": "cpu_0"},
        "osx-arm64": {"torchlike": "cpu_0", "fftlike": "cpu_0"},
    }
    for name in ("linux-64", "osx-arm64"):
        assert not any(vp.startswith(CUDA) for vp in lock["targets"][name]["virtual_packages"])
        for package in lock["targets"][name]["packages"]:
            assert not any(dep.startswith(CUDA) for dep in package["depends"]), package
    gpu = lock["targets"]["gpu"]["virtual_packages"]
    assert "__cuda=12.4=0" in gpu and "__glibc=2.28=0" in gpu and gpu.count("__glibc=2.28=0") == 1
    assert "__cuda=12=0" in lock["targets"]["linux-64-cuda12"]["virtual_packages"]
    assert "__cuda=11.8=0" in lock["targets"]["old-gpu"]["virtual_packages"]


def test_cuda_build_is_never_forced_onto_a_target_without_cuda(
    api: httpx.Client, channel_url: str
) -> None:
    for spec in ("torchlike=*=cuda*", "fftlike * cuda*"):
        job = submit_and_wait(
            api, {"channels": [channel_url], "dependencies": [spec], "targets": ["linux-64"]}
        )
        error = failed_with(job, "unsatisfiable")
        assert CUDA in error["detail"]["explanation"], error


# --- exclude_newer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dated_channel_url(channel_server: ChannelServer) -> str:
    """`timely` 1.0 (2020) and 2.0 (2024), in a channel that says it got each when built.

    The session's test channel has them too, but its index says every package arrived
    today (see `backdate_index`), so as it stood in 2021 it held nothing.
    """
    name = f"dated-{uuid.uuid4().hex[:8]}"
    timely = [spec for spec in testchan.testchan_packages() if spec.name == "timely"]
    backdate_index(build_channel(channel_server.root / name, timely))
    return channel_server.channel_url(name)


def test_exclude_newer(api: httpx.Client, dated_channel_url: str) -> None:
    body = {"channels": [dated_channel_url], "dependencies": ["timely"], "targets": ["linux-64"]}
    old = submit_and_wait(api, {**body, "exclude_newer": "2021-01-01T00:00:00Z"})
    new = submit_and_wait(api, body)
    assert packages_of(get_lock(api, old), "linux-64")["timely"]["version"] == "1.0"
    assert packages_of(get_lock(api, new), "linux-64")["timely"]["version"] == "2.0"
    assert get_lock(api, old)["provenance"]["exclude_newer"] == "2021-01-01T00:00:00Z"
    # The same instant in another zone is the same request.
    again = api.post("/api/v1/solves", json={**body, "exclude_newer": "2021-01-01T01:00:00+01:00"})
    assert again.status_code == 200 and again.json()["id"] == old["id"]
    # Before either existed: nothing to install, and the solver says why.
    none = submit_and_wait(api, {**body, "exclude_newer": "2019-01-01T00:00:00Z"})
    assert "cutoff" in failed_with(none, "unsatisfiable")["detail"]["explanation"]


# --- errors ---------------------------------------------------------------------------------


def test_unsatisfiable_names_the_conflicting_specs(api: httpx.Client, channel_url: str) -> None:
    job = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["numlib 1.20.*", "numlib>=2"],
            "targets": ["linux-64"],
        },
    )
    error = failed_with(job, "unsatisfiable")
    assert "numlib >=2" in error["detail"]["explanation"]
    assert "numlib 1.20.*" in error["detail"]["explanation"]
    assert error["message"].startswith("target linux-64: ")

    job = submit_and_wait(
        api,
        {"channels": [channel_url], "dependencies": ["conflict-a"], "targets": ["osx-arm64"]},
    )
    error = failed_with(job, "unsatisfiable")
    assert "conflict-a" in error["message"]
    assert "libfoo <1.0" in error["detail"]["explanation"]
    assert error["detail"]["target"] == "osx-arm64"


def test_unsatisfiable_on_one_target_fails_the_job(api: httpx.Client, channel_url: str) -> None:
    job = submit_and_wait(
        api,
        {
            "channels": [channel_url],
            "dependencies": ["linuxonly"],
            "targets": ["linux-64", "osx-arm64"],
        },
    )
    error = failed_with(job, "unsatisfiable")
    assert error["detail"]["target"] == "osx-arm64"
    assert "linuxonly" in error["detail"]["explanation"]
    assert job["progress"]["osx-arm64"] == "failed"


def test_not_a_conda_channel(api: httpx.Client, channel_server: ChannelServer) -> None:
    url = f"{channel_server.url}/not-a-channel"
    # No targets: the three defaults share one Gateway, so two of them only see "a
    # coalesced request failed"; the job must report the one that carries the cause.
    job = submit_and_wait(api, {"channels": [url], "dependencies": ["numlib"]})
    error = failed_with(job, "channel")
    assert url in error["message"] and "404" in error["message"], error
    assert error["detail"]["status"] == 404
    assert error["detail"]["url"].startswith(url)


def test_channel_unreachable(http_of: Any, windowless: InProcessService, dead_url: str) -> None:
    http = http_of(windowless)
    job = submit_and_wait(
        http,
        {"channels": [f"{dead_url}/chan"], "dependencies": ["numlib"], "targets": ["linux-64"]},
    )
    error = failed_with(job, "channel")
    assert f"{dead_url}/chan" in error["message"], error
    assert "refused" in error["message"].lower(), error
    assert error["detail"]["url"].startswith(f"{dead_url}/chan")


def test_solver_timeout(
    http_of: Any, impatient_inprocess: InProcessService, channel_server: ChannelServer
) -> None:
    """A solve that cannot finish in CONDARCHIVE_SOLVE_TIMEOUT (2 s) fails as `timeout`."""
    name = f"pigeonhole-{uuid.uuid4().hex[:8]}"
    specs = write_pigeonhole_channel(channel_server.root / name)
    http = http_of(impatient_inprocess)
    job = submit_and_wait(
        http,
        {"channels": [channel_server.channel_url(name)], "dependencies": specs},
        timeout=60,
    )
    error = failed_with(job, "timeout")
    assert "2s" in error["message"], error


@contextmanager
def slow_alias(
    channel_server: ChannelServer, stem: str, under: str, seconds: float
) -> Iterator[str]:
    """A new alias of the test channel whose requests under `under` (a path in it) wait
    `seconds` before they are answered; yields the alias's URL."""
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    (channel_server.root / name).symlink_to(channel_server.root / "testchan")
    prefix = f"/{name}/{under}"
    channel_server.delays[prefix] = seconds
    try:
        yield channel_server.channel_url(name)
    finally:
        del channel_server.delays[prefix]


def post_two_targets(http: httpx.Client, channel: str) -> str:
    """POST numlib for linux-64 and osx-arm64 on `channel`; the new job's id."""
    response = http.post(
        "/api/v1/solves",
        json={
            "channels": [channel],
            "dependencies": ["numlib"],
            "targets": ["linux-64", "osx-arm64"],
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.mark.process
def test_repodata_fetch_timeout_and_progress(
    http_of: Any, impatient: Service, channel_server: ChannelServer
) -> None:
    """A channel that answers too slowly: running with its stage, then `timeout`."""
    with slow_alias(channel_server, "slow", "", 10) as channel:
        http = http_of(impatient)
        job_id = post_two_targets(http, channel)
        job = http.get(f"/api/v1/solves/{job_id}").json()
        while job["status"] == "queued":
            time.sleep(0.05)
            job = http.get(f"/api/v1/solves/{job_id}").json()
        # The channel holds every request for 10 s and the timeout is 2 s: still running.
        assert job["status"] == "running", job
        assert job["stage"] == "fetching repodata"
        assert job["progress"] == {"linux-64": "pending", "osx-arm64": "pending"}
        assert job["started_at"] is not None
        error = failed_with(wait_for_solve(http, job_id), "timeout")
        assert "repodata" in error["message"]


def test_progress_shows_a_finished_target_while_another_still_solves(
    client: httpx.Client, channel_server: ChannelServer
) -> None:
    """osx-arm64's repodata is slow: the job reports linux-64 done and osx-arm64 fetching
    its repodata before it ends. The worker hands progress to its heartbeat thread and
    solves on; the thread writes it at once, not at the next beat."""
    with slow_alias(channel_server, "halfslow", "osx-arm64/", 2) as channel:
        job_id = post_two_targets(client, channel)
        seen: list[tuple[str, dict[str, str]]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = client.get(f"/api/v1/solves/{job_id}").json()
            seen.append((job["stage"], job["progress"]))
            if job["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        assert job["status"] == "succeeded", job
        expected = ("solving", {"linux-64": "done", "osx-arm64": "fetching repodata"})
        assert expected in seen, seen[-5:]
        assert any(stage == "fetching repodata" for stage, _ in seen), seen[:5]
        assert job["progress"] == {"linux-64": "done", "osx-arm64": "done"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"dependencies": ["numlib\u0000"]}, ["body", "dependencies", 0]),
        ({"dependencies": ["numlib >>1"]}, ["body", "dependencies", 0]),
        ({"environment": "channels: [a\ndependencies: [numlib]\n"}, ["body", "environment"]),
        ({"targets": ["linux-64\u0000"]}, ["body", "targets", 0]),
        (
            {"targets": [{"name": "a\u0000", "platform": "linux-64"}]},
            ["body", "targets", 0, "name"],
        ),
        (
            {"targets": [{"platform": "linux-64", "virtual_packages": ["__glibc=2.28=\u0000"]}]},
            ["body", "targets", 0, "virtual_packages", 0],
        ),
        ({"exclude_newer": "0001-01-01T00:00:00+01:00"}, ["body", "exclude_newer"]),
        ({"exclude_newer": "9999-12-31T23:59:59-01:00"}, ["body", "exclude_newer"]),
    ],
)
def test_input_errors_are_422_at_post(
    api: httpx.Client, channel_url: str, body: dict[str, Any], loc: list[Any]
) -> None:
    if "environment" not in body:
        body = {"channels": [channel_url], "dependencies": ["numlib"], **body}
    response = api.post("/api/v1/solves", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize(
    "extra",
    [
        {"dependencies": ['numlib[build="\u0000"]']},
        {"dependencies": ["numlib # a comment"]},
        {"exclude_newer": "0001-01-01T00:00:00Z"},
        {"exclude_newer": "9999-12-31T23:59:59Z"},
        {"exclude_newer": "2021-01-01T00:00:00"},
        {"dependencies": ["x" * 5000]},
    ],
)
def test_odd_but_valid_input_ends_cleanly(
    api: httpx.Client, channel_url: str, extra: dict[str, Any]
) -> None:
    """Accepted input ends as succeeded or as a failure the user can act on, never `internal`."""
    body = {"channels": [channel_url], "dependencies": ["numlib"], "targets": ["linux-64"]}
    job = submit_and_wait(api, {**body, **extra})
    assert job["status"] == "succeeded" or job["error"]["kind"] == "unsatisfiable", job


# --- dedupe ---------------------------------------------------------------------------------


def jobs_in_sqlite(service: Service | InProcessService, request_hash: str) -> list[tuple[str, int]]:
    path = Path(service.env["CONDARCHIVE_DATA_DIR"]) / "condarchive.sqlite"
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, attempts FROM solve_jobs WHERE request_hash = ?", (request_hash,)
        ).fetchall()


def concurrent_posts(
    service: InProcessService, body: dict[str, Any], n: int = 8
) -> list[httpx.Response]:
    """`n` identical POSTs at once, each from its own client (and event loop thread)."""
    barrier = threading.Barrier(n)
    responses: list[httpx.Response | BaseException] = [RuntimeError("not run")] * n

    def post(i: int) -> None:
        with service.client() as http:
            barrier.wait()
            try:
                responses[i] = http.post("/api/v1/solves", json=body)
            except BaseException as exc:  # noqa: BLE001 - reported below
                responses[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for response in responses:
        assert isinstance(response, httpx.Response), response
    return responses  # type: ignore[return-value]


def test_concurrent_identical_posts_make_one_job(
    api: httpx.Client, inprocess: InProcessService, channel_url: str
) -> None:
    body = {
        "channels": [channel_url],
        "dependencies": ["numlib", "pyutil"],
        "targets": [unique_target(), unique_target("osx-arm64")],
    }
    responses = concurrent_posts(inprocess, body)
    assert {r.status_code for r in responses} <= {200, 202}
    assert [r.status_code for r in responses].count(202) >= 1
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    (job_id,) = ids
    job = wait_for_solve(api, job_id)
    assert job["status"] == "succeeded"
    # One row, claimed once: one solve.
    assert jobs_in_sqlite(inprocess, job["request_hash"]) == [(job_id, 1)]

    again = api.post("/api/v1/solves", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == job_id and again.json()["status"] == "succeeded"
    assert again.json()["lock_id"] == job["lock_id"]
    assert jobs_in_sqlite(inprocess, job["request_hash"]) == [(job_id, 1)]


def test_failed_solve_is_not_reused(api: httpx.Client, channel_url: str) -> None:
    body = {"channels": [channel_url], "dependencies": ["conflict-a"], "targets": [unique_target()]}
    first = submit_and_wait(api, body)
    assert first["status"] == "failed"
    retry = api.post("/api/v1/solves", json=body)
    assert retry.status_code == 202 and retry.json()["id"] != first["id"]
    wait_for_solve(api, retry.json()["id"])


def test_dedupe_window_zero_solves_again(
    http_of: Any, windowless: InProcessService, channel_url: str
) -> None:
    http = http_of(windowless)
    body = {"channels": [channel_url], "dependencies": ["numlib"], "targets": ["linux-64"]}
    first = submit_and_wait(http, body)
    assert first["status"] == "succeeded"
    again = http.post("/api/v1/solves", json=body)
    assert again.status_code == 202 and again.json()["id"] != first["id"]
    second = wait_for_solve(http, again.json()["id"])
    assert second["lock_id"] == first["lock_id"]
    assert len(jobs_in_sqlite(windowless, first["request_hash"])) == 2
