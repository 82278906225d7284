"""Hostile input, as a table: each case gets its clear 4xx (or a failed job naming the
problem, when the hostile part is upstream's repodata) and the service keeps serving.

One in-process service (tests/support/inprocess.py), with its own upstream channels on
127.0.0.1:

* `hostchan`: ordinary packages;
* `travchan`: sharded repodata listing `evil` under the filename `../../evil-1.0-0.conda`;
* `basechan`: repodata whose `base_url` puts every package at 169.254.169.254;
* `redirchan`: no files; its repodata answers 302 to `localhost`, a host not allowed;
* `proxied`: the same, behind the pull-through proxy channel `up`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import zstandard

from tests.support.channel_server import ChannelServer
from tests.support.inprocess import InProcessService, inprocess_service
from tests.support.packages import PackageSpec, build_channel
from tests.support.service import wait_for_solve

MiB = 1024 * 1024


# --- hostile upstream channels -----------------------------------------------------------


def _unzstd(data: bytes) -> Any:
    return msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(data))


def _zstd(obj: Any) -> bytes:
    return zstandard.ZstdCompressor().compress(msgpack.packb(obj))


def tamper_shard(
    channel: Path, subdir: str, name: str, filename: str | None = None, base_url: str = ""
) -> None:
    """Rewrite one package's shard (and the shard index) as a hostile channel would:
    list the package under another `filename`, and/or set the index's `base_url`."""
    directory = channel / subdir
    index_path = directory / "repodata_shards.msgpack.zst"
    index = _unzstd(index_path.read_bytes())
    shard = _unzstd(
        (directory / "shards" / f"{index['shards'][name].hex()}.msgpack.zst").read_bytes()
    )
    if filename:
        for section in ("packages", "packages.conda"):
            records = list(shard[section].values())
            shard[section] = {filename: records[0]} if records else {}
    data = _zstd(shard)
    digest = hashlib.sha256(data).hexdigest()
    (directory / "shards" / f"{digest}.msgpack.zst").write_bytes(data)
    index["shards"][name] = bytes.fromhex(digest)
    if base_url:
        index["info"]["base_url"] = base_url
    index_path.write_bytes(_zstd(index))


@dataclass
class Hostile:
    service: InProcessService
    server: ChannelServer
    client: httpx.Client

    def channel(self, name: str) -> str:
        return self.server.channel_url(name)

    def solve(self, channel: str, dependencies: list[str]) -> httpx.Response:
        return self.client.post(
            "/api/v1/solves",
            json={"channels": [channel], "dependencies": dependencies, "targets": ["linux-64"]},
        )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile-channels")
    build_channel(
        root / "hostchan",
        [
            PackageSpec("libfoo", "1.0", "h0_0", 0, "linux-64"),
            PackageSpec("redirpkg", "1.0", "0", 0, "linux-64"),
            PackageSpec("plain", "1.0", "0", 0, "noarch"),
        ],
    )
    build_channel(root / "travchan", [PackageSpec("evil", "1.0", "0", 0, "linux-64")])
    tamper_shard(root / "travchan", "linux-64", "evil", filename="../../evil-1.0-0.conda")
    build_channel(root / "basechan", [PackageSpec("nice", "1.0", "0", 0, "linux-64")])
    tamper_shard(root / "basechan", "linux-64", "nice", base_url="http://169.254.169.254/latest/")
    with ChannelServer(root) as server:
        elsewhere = f"http://localhost:{server.port}"  # the same server, by a name not allowed
        server.redirects["/redirchan/linux-64/repodata.json"] = (
            f"{elsewhere}/hostchan/linux-64/repodata.json"
        )
        server.redirects["/hostchan/linux-64/redirpkg-1.0-0.conda"] = (
            f"{elsewhere}/hostchan/linux-64/redirpkg-1.0-0.conda"
        )
        server.redirects["/proxied/linux-64/repodata.json"] = (
            f"{elsewhere}/hostchan/linux-64/repodata.json"
        )
        with (
            inprocess_service(
                tmp_path_factory.mktemp("hostile"),
                server.url,
                archive="auto",  # as `serve`: a redirected package download is refused
                max_import_bytes=str(2 * MiB),
                proxy_channels=f"up={server.channel_url('proxied')}",
            ) as service,
            service.client() as client,
        ):
            yield Hostile(service, server, client)
            # A proxied upstream that misbehaves is a 502 (Bad Gateway), and only that.
            errors = [e for e in service.server_errors() if "/channels/up/" not in e]
            assert errors == [], "the service answered 5xx to hostile input"


# --- the table ---------------------------------------------------------------------------


def refused(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    for needle in needles:
        assert needle in response.text, (needle, response.text)


def failed_job(h: Hostile, response: httpx.Response, kind: str, *needles: str) -> None:
    assert response.status_code in (200, 202), response.text
    job = wait_for_solve(h.client, response.json()["id"])
    assert job["status"] == "failed", job
    assert job["error"]["kind"] == kind, job
    for needle in needles:
        assert needle in job["error"]["message"], (needle, job["error"])


def billion_laughs(top: str = "lol") -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + f"\n{top}: *i\n"


def case_traversal_in_repodata(h: Hostile) -> None:
    failed_job(
        h,
        h.solve(h.channel("travchan"), ["evil"]),
        "channel",
        "'../../evil-1.0-0.conda'",
        "not a conda package filename",
    )


def case_base_url_at_metadata_service(h: Hostile) -> None:
    failed_job(
        h,
        h.solve(h.channel("basechan"), ["nice"]),
        "channel",
        "169.254.169.254",
        "not in CONDARCHIVE_ALLOWED_CHANNELS",
    )


def case_base_url_in_an_import(h: Hostile) -> None:
    url = f"{h.channel('basechan')}/linux-64/nice-1.0-0.conda"
    response = h.client.post("/api/v1/locks/import", json={"content": _explicit(url)})
    refused(response, 422, "line 3", "locates nice-1.0-0.conda at", "169.254.169.254")


def case_redirect_to_disallowed_host(h: Hostile) -> None:
    failed_job(
        h,
        h.solve(h.channel("redirchan"), ["libfoo"]),
        "channel",
        "redirect refused",
        f"http://localhost:{h.server.port}/hostchan/linux-64/repodata.json",
    )


def case_package_download_redirected_away(h: Hostile) -> None:
    job = wait_for_solve(h.client, h.solve(h.channel("hostchan"), ["redirpkg"]).json()["id"])
    assert job["status"] == "succeeded", job
    lock_id = job["lock_id"]
    status: dict[str, Any] = {}
    for _ in range(300):
        status = h.client.get(f"/api/v1/locks/{lock_id}/archive").json()
        if status["status"] in ("archived", "failed"):
            break
        time.sleep(0.1)
    assert status["status"] == "failed", status
    (package,) = status["targets"]["linux-64"]["packages"]
    assert "redirect refused" in package["reason"] and "localhost" in package["reason"], package


def _explicit(url: str) -> str:
    return f"# platform: linux-64\n@EXPLICIT\n{url}\n"


def case_proxy_upstream_redirected_away(h: Hostile) -> None:
    response = h.client.get("/channels/up/linux-64/repodata.json")
    refused(response, 502, "redirect refused", f"http://localhost:{h.server.port}/hostchan")


def case_traversal_in_explicit_import(h: Hostile) -> None:
    url = f"{h.channel('hostchan')}/linux-64/../../../etc/passwd-1.0-0.conda"
    response = h.client.post("/api/v1/locks/import", json={"content": _explicit(url)})
    refused(response, 422, "line 3", "has '.' or '..' in its path")


def case_encoded_traversal_in_import(h: Hostile) -> None:
    url = f"{h.channel('hostchan')}/linux-64/..%2F..%2Fevil-1.0-0.conda"
    response = h.client.post("/api/v1/locks/import", json={"content": _explicit(url)})
    refused(response, 422, "has '.' or '..' in its path")


def case_odd_filename_in_import(h: Hostile) -> None:
    url = f"{h.channel('hostchan')}/linux-64/%3Cevil%3E-1.0-0.conda"
    response = h.client.post("/api/v1/locks/import", json={"content": _explicit(url)})
    refused(response, 422, "'%3Cevil%3E-1.0-0.conda' is not a conda package filename")


def case_traversal_in_conda_lock_import(h: Hostile) -> None:
    url = f"{h.channel('hostchan')}/noarch/..\\\\..\\\\evil-1.0-0.conda"
    content = (
        "version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n"
        f"- {{name: evil, version: '1.0', manager: conda, platform: linux-64, url: '{url}',"
        " hash: {md5: 0123456789abcdef0123456789abcdef}}\n"
    )
    response = h.client.post("/api/v1/locks/import", json={"content": content})
    refused(response, 422, "line 4", "has '.' or '..' in its path")


def case_filename_in_channel_path(h: Hostile) -> None:
    response = h.client.get("/channels/hostchan-00000000/linux-64/..evil.conda")
    refused(response, 404, "not a conda package filename")


def case_huge_environment_yml(h: Hostile) -> None:
    environment = "channels: [x]\ndependencies: [numpy]\n" + "# padding\n" * 40_000
    response = h.client.post("/api/v1/solves", json={"environment": environment})
    refused(response, 422, "CONDARCHIVE_MAX_ENVIRONMENT_BYTES", "262144")


def case_deeply_nested_yaml(h: Hostile) -> None:
    environment = "dependencies: " + "[" * 50_000 + "]" * 50_000 + "\n"
    response = h.client.post("/api/v1/solves", json={"environment": environment})
    refused(response, 422, "CONDARCHIVE_MAX_YAML_DEPTH", "32 levels")


def case_deeply_nested_import(h: Hostile) -> None:
    content = "version: 1\nmetadata: {}\npackage: " + "[" * 50_000 + "]" * 50_000 + "\n"
    response = h.client.post("/api/v1/locks/import", json={"content": content})
    refused(response, 422, "CONDARCHIVE_MAX_YAML_DEPTH")


def case_billion_laughs_environment(h: Hostile) -> None:
    environment = f"channels: [{h.channel('hostchan')}]\n" + billion_laughs("dependencies")
    response = h.client.post("/api/v1/solves", json={"environment": environment})
    refused(response, 422, "CONDARCHIVE_MAX_YAML_ALIAS_NODES", "10000")


def case_billion_laughs_import(h: Hostile) -> None:
    content = "version: 1\nmetadata: {}\n" + billion_laughs("package")
    response = h.client.post("/api/v1/locks/import", json={"content": content})
    refused(response, 422, "CONDARCHIVE_MAX_YAML_ALIAS_NODES")


def case_yaml_values_that_do_not_exist(h: Hostile) -> None:
    environment = "channels: [x]\ndependencies: [numpy]\nwhen: 2024-13-45\nbig: " + "9" * 5000
    response = h.client.post("/api/v1/solves", json={"environment": environment})
    refused(response, 422, "not valid YAML")


def case_loopback_channel_not_allowed(h: Hostile) -> None:
    refused(
        h.solve("http://127.0.0.1:1/chan", ["numpy"]), 422, "not in CONDARCHIVE_ALLOWED_CHANNELS"
    )


def case_localhost_channel_not_allowed(h: Hostile) -> None:
    response = h.solve(f"http://localhost:{h.server.port}/hostchan", ["libfoo"])
    refused(response, 422, "private, loopback or link-local address (localhost)")


def case_metadata_service_channel(h: Hostile) -> None:
    response = h.solve("http://169.254.169.254/latest/meta-data", ["numpy"])
    refused(response, 422, "link-local address (169.254.169.254)")


def case_metadata_service_in_match_spec(h: Hostile) -> None:
    response = h.solve(h.channel("hostchan"), ["http://169.254.169.254/latest::numpy"])
    refused(response, 422, "169.254.169.254", "not in CONDARCHIVE_ALLOWED_CHANNELS")


def case_metadata_service_spelled_otherwise(h: Hostile) -> None:
    for url in ("http://2852039166/latest", "http://[::ffff:169.254.169.254]/latest"):
        refused(h.solve(url, ["numpy"]), 422, "not in normal form")


def case_ten_megabyte_spec(h: Hostile) -> None:
    response = h.solve(h.channel("hostchan"), ["numpy" + "x" * 10 * MiB])
    refused(response, 413, "CONDARCHIVE_MAX_BODY_BYTES", "1048576")


def case_ten_megabytes_chunked(h: Hostile) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"dependencies": ["'
        for _ in range(10):
            yield b"x" * MiB
        yield b'"]}'

    response = h.client.post(
        "/api/v1/solves", content=body(), headers={"content-type": "application/json"}
    )
    refused(response, 413, "CONDARCHIVE_MAX_BODY_BYTES")


def case_oversized_import(h: Hostile) -> None:
    response = h.client.post("/api/v1/locks/import", json={"content": "#" * (3 * MiB)})
    refused(response, 413, "CONDARCHIVE_MAX_IMPORT_BYTES", str(2 * MiB))


def case_ten_thousand_dependencies(h: Hostile) -> None:
    response = h.solve(h.channel("hostchan"), [f"pkg{i}" for i in range(10_000)])
    refused(response, 422, "10000 dependencies", "the limit is 500", "CONDARCHIVE_MAX_DEPENDENCIES")


def case_script_in_page(h: Hostile) -> None:
    environment = (
        "name: <script>alert('pwned')</script>\n"
        f"channels: [{h.channel('hostchan')}]\n"
        "dependencies: [plain]  # <img src=x onerror=alert(1)>\n"
    )
    response = h.client.post(
        "/api/v1/solves", json={"environment": environment, "targets": ["linux-64"]}
    )
    job = wait_for_solve(h.client, response.json()["id"])
    assert job["status"] == "succeeded", job
    page = h.client.get(f"/l/{job['lock_id']}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in page
    search = h.client.get("/", params={"package": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)" not in search and "&lt;script&gt;alert(1)" in search


def case_nul_and_odd_ids(h: Hostile) -> None:
    for path in ("/api/v1/solves/%00", "/api/v1/locks/%00", "/l/%00", "/l/..%2F..%2Fetc"):
        assert h.client.get(path).status_code == 404, path


def case_newline_in_target_name(h: Hostile) -> None:
    """A name ending in a newline passed a `^...$` check, and later broke the lockfile's
    Content-Disposition header (the server dropped the connection)."""
    for target in ({"name": "a\n", "platform": "linux-64"}, "linux-64-cuda12\n"):
        response = h.client.post(
            "/api/v1/solves",
            json={"channels": [h.channel("hostchan")], "dependencies": ["libfoo"],
                  "targets": [target]},
        )  # fmt: skip
        refused(response, 422, "target")


def case_numbers_past_sql_integers(h: Hostile) -> None:
    """Found by the fuzzer: an offset past 64 bits was a 500 (OverflowError) on SQLite."""
    huge = "9" * 32
    refused(h.client.get("/api/v1/locks", params={"offset": huge}), 422, "less than or equal")
    refused(h.client.get("/", params={"offset": huge}), 422)


CASES: list[Callable[[Hostile], None]] = [
    case_traversal_in_repodata,
    case_base_url_at_metadata_service,
    case_base_url_in_an_import,
    case_redirect_to_disallowed_host,
    case_package_download_redirected_away,
    case_proxy_upstream_redirected_away,
    case_traversal_in_explicit_import,
    case_encoded_traversal_in_import,
    case_odd_filename_in_import,
    case_traversal_in_conda_lock_import,
    case_filename_in_channel_path,
    case_huge_environment_yml,
    case_deeply_nested_yaml,
    case_deeply_nested_import,
    case_billion_laughs_environment,
    case_billion_laughs_import,
    case_yaml_values_that_do_not_exist,
    case_loopback_channel_not_allowed,
    case_localhost_channel_not_allowed,
    case_metadata_service_channel,
    case_metadata_service_in_match_spec,
    case_metadata_service_spelled_otherwise,
    case_ten_megabyte_spec,
    case_ten_megabytes_chunked,
    case_oversized_import,
    case_ten_thousand_dependencies,
    case_script_in_page,
    case_nul_and_odd_ids,
    case_newline_in_target_name,
    case_numbers_past_sql_integers,
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__.removeprefix("case_"))
def test_hostile_input(hostile: Hostile, case: Callable[[Hostile], None]) -> None:
    case(hostile)
    health = hostile.client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
