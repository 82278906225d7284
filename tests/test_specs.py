"""Specs, targets and the channel allowlist: parsing, normalising, hashing, refusing.

The parsing modules are checked directly over tables of real-world input, and every
refusal is checked again over HTTP against the running service (422 whose `detail`
names the spec, the line or the field), in process (tests/support/inprocess.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import pytest

from app.config import DEFAULT_ALLOWED_CHANNELS
from app.core.canonical import format_time
from app.core.channels import ChannelError, is_allowed, resolve_allowed_channel
from app.core.pypi_spec import PyPIPolicy
from app.core.specs import SolveRequest, build_spec, parse_environment_yaml
from app.core.targets import DEFAULT_VIRTUAL_PACKAGES, PLATFORMS, Target, parse_targets
from app.errors import InputError
from tests.support.inprocess import InProcessService
from tests.support.service import wait_for_solve

ALIAS = "https://conda.anaconda.org"
DEFAULT_ALLOWED = [entry for entry in DEFAULT_ALLOWED_CHANNELS.split(",") if entry]


def spec_of(dependencies: list[Any], channels: list[Any] | None = None, **kw: Any) -> Any:
    return build_spec(
        environment=None,
        channels=channels if channels is not None else ["conda-forge"],
        dependencies=dependencies,
        allowed_channels=kw.get("allowed", DEFAULT_ALLOWED),
        channel_alias=ALIAS,
    )


def env_spec(text: str, allowed: list[str] | None = None) -> Any:
    return build_spec(
        environment=text,
        channels=None,
        dependencies=None,
        allowed_channels=allowed or DEFAULT_ALLOWED,
        channel_alias=ALIAS,
    )


# --- match specs -------------------------------------------------------------------------

#: (as users write it, as it is stored). The stored form is py-rattler's normalisation
#: with strict=False, which follows conda: `=1.26` is fuzzy (`1.26.*`), a bare version
#: (`numpy 1.11`, and the version of `name=version=build`) is exact (`==1.11`).
MATCH_SPECS = [
    ("numpy", "numpy"),
    ("NumPy", "numpy"),
    ("numpy=1.26", "numpy 1.26.*"),
    ("numpy =1.26", "numpy 1.26.*"),
    ("numpy=1.26.*", "numpy 1.26.*"),
    ("numpy 1.26.*", "numpy 1.26.*"),
    ("numpy=1", "numpy 1.*"),
    ("numpy 1.8*", "numpy 1.8.*"),
    ("numpy>=1.20,<2", "numpy >=1.20,<2"),
    ("numpy >=1.20,<2", "numpy >=1.20,<2"),
    ("numpy >= 1.20", "numpy >=1.20"),
    ("numpy !=1.20", "numpy !=1.20"),
    ("numpy==1.11", "numpy ==1.11"),
    ("numpy 1.11", "numpy ==1.11"),
    ("numpy 1.11|1.12", "numpy ==1.11|==1.12"),
    ("numpy=1.11=py36_0", "numpy ==1.11 py36_0"),
    ("numpy 1.11 py36_0", "numpy ==1.11 py36_0"),
    ("numpy=1.26=py312*", "numpy ==1.26 py312*"),
    ("pytorch=*=*cuda*", "pytorch * *cuda*"),
    ("pytorch * *cuda*", "pytorch * *cuda*"),
    ('numpy[version=">=1.20",build=py*]', "numpy >=1.20 py*"),
    ("numpy[version='1.26.*']", "numpy 1.26.*"),
    ("numpy[build_number=3]", 'numpy[build_number="==3"]'),
    ("python 3.6.*", "python 3.6.*"),
    ("conda-forge::numpy", "conda-forge::numpy"),
    ("conda-forge::numpy>=1.26", "conda-forge::numpy >=1.26"),
    ("https://conda.anaconda.org/conda-forge::numpy", "conda-forge::numpy"),
    ("numpy[channel=conda-forge]", "conda-forge::numpy"),
    ("conda-forge/label/dev::numpy", "conda-forge/label/dev::numpy"),
]


@pytest.mark.parametrize(("raw", "normalised"), MATCH_SPECS)
def test_match_spec_normalised(raw: str, normalised: str) -> None:
    assert spec_of([raw]).dependencies == (normalised,)


def test_every_form_in_one_environment_yml() -> None:
    """The same table as an environment.yml; YAML quoting does not change the result."""
    lines = "\n".join(f"  - {json.dumps(raw)}" for raw, _ in MATCH_SPECS)
    spec = env_spec(f"name: table\nchannels:\n  - conda-forge\ndependencies:\n{lines}\n")
    assert spec.dependencies == tuple(sorted({n for _, n in MATCH_SPECS}))
    assert spec.name == "table"


def test_spec_hash_is_the_documented_sha256() -> None:
    """spec hash = sha256 of canonical JSON of {channels, dependencies (sorted, unique)}."""
    spec = spec_of(["scipy", "numpy=1.26", "numpy 1.26.*"])
    canonical = {
        "channels": ["https://conda.anaconda.org/conda-forge"],
        "dependencies": ["numpy 1.26.*", "scipy"],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert spec.hash == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (["numpy", "scipy", "pandas"], ["pandas", "numpy", "scipy"]),
        (["numpy=1.26"], ["numpy 1.26.*"]),
        (["numpy=1.26", "numpy 1.26.*"], ["numpy 1.26.*"]),
        (["numpy>=1.20,<2"], ["numpy >=1.20,<2"]),
        (["numpy 1.11"], ["numpy==1.11"]),
        (["numpy=1.11=py36_0"], ["numpy 1.11 py36_0"]),
        (["pytorch=*=*cuda*"], ["pytorch * *cuda*"]),
        (['numpy[version=">=1.20",build=py*]'], ["numpy >=1.20 py*"]),
        (["conda-forge::numpy"], ["https://conda.anaconda.org/conda-forge::numpy"]),
    ],
)
def test_same_meaning_same_spec_hash(left: list[str], right: list[str]) -> None:
    assert spec_of(left).hash == spec_of(right).hash


@pytest.mark.parametrize(
    "channel",
    [
        "https://conda.anaconda.org/conda-forge",
        "https://conda.anaconda.org/conda-forge/",
        "HTTPS://Conda.Anaconda.org/conda-forge",
    ],
)
def test_channel_name_and_url_hash_the_same(channel: str) -> None:
    assert spec_of(["numpy"], [channel]).hash == spec_of(["numpy"], ["conda-forge"]).hash


def test_what_changes_a_solve_changes_the_hash() -> None:
    base = spec_of(["numpy", "scipy"], ["conda-forge", "bioconda"])
    assert base.hash != spec_of(["numpy", "scipy"], ["bioconda", "conda-forge"]).hash
    assert base.hash != spec_of(["numpy=1.26", "scipy"], ["conda-forge", "bioconda"]).hash
    assert base.hash != spec_of(["numpy"], ["conda-forge", "bioconda"]).hash


def test_environment_yml_and_json_body_are_the_same_spec() -> None:
    """The environment's name is for display only; `nodefaults` is not a channel."""
    text = (
        "name: analysis\nchannels:\n  - conda-forge\n  - nodefaults\n"
        "dependencies:\n  - scipy\n  - numpy=1.26\n"
    )
    assert env_spec(text).hash == spec_of(["numpy 1.26.*", "scipy"]).hash
    renamed = text.replace("analysis", "other")
    assert env_spec(renamed).hash == env_spec(text).hash


def test_defaults_expands_to_main_and_r() -> None:
    spec = spec_of(["numpy"], ["defaults"])
    assert spec.channels == (
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/r",
    )


def test_spec_channel_is_added_and_duplicates_dropped() -> None:
    spec = spec_of(["bioconda::samtools", "numpy"], ["conda-forge", "conda-forge/"])
    assert spec.channels == (f"{ALIAS}/conda-forge", f"{ALIAS}/bioconda")


def request_of(targets: list[Any], exclude_newer: Any = None) -> SolveRequest:
    return SolveRequest(
        spec=spec_of(["numpy"]),
        targets=tuple(parse_targets(targets, ["body", "targets"])),
        exclude_newer=exclude_newer,
        channel_priority="strict",
    )


def test_request_hash_ignores_target_order_and_shorthand() -> None:
    from datetime import datetime, timedelta, timezone

    a = request_of(["osx-arm64", "linux-64", "linux-64-cuda12"])
    b = request_of(
        [
            {"name": "linux-64-cuda12", "platform": "linux-64", "virtual_packages": ["__cuda=12"]},
            "linux-64",
            {"platform": "osx-arm64"},
        ]
    )
    assert a.hash == b.hash
    assert a.hash != request_of(["osx-arm64", "linux-64"]).hash
    utc = datetime(2021, 1, 1, tzinfo=UTC)
    plus_one = datetime(2021, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert request_of(["linux-64"], utc).hash == request_of(["linux-64"], plus_one).hash
    assert format_time(plus_one) == "2021-01-01T00:00:00Z"
    assert request_of(["linux-64"], utc).hash != request_of(["linux-64"]).hash


# --- refusals, directly ---------------------------------------------------------------------


def test_bad_spec_in_environment_yml_names_the_line() -> None:
    text = "name: x\nchannels:\n  - conda-forge\ndependencies:\n  - numpy\n  - scipy >>1\n"
    with pytest.raises(InputError) as caught:
        env_spec(text)
    assert caught.value.loc == ["body", "environment", "dependencies", 1]
    assert "line 6" in caught.value.msg and "scipy >>1" in caught.value.msg


@pytest.mark.parametrize(
    "text",
    [
        "channels: [conda-forge\ndependencies: [numpy]\n",
        "channels:\n  - conda-forge\n dependencies:\n  - numpy\n",
    ],
)
def test_invalid_yaml_names_the_line(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_environment_yaml(text)
    assert "not valid YAML at line" in caught.value.msg


def test_pip_section_is_the_pypi_part() -> None:
    text = "channels: [conda-forge]\ndependencies:\n  - numpy\n  - pip\n  - pip:\n    - requests\n"
    with pytest.raises(InputError) as caught:  # PyPI's index is not allowed by default here
        env_spec(text)
    assert caught.value.loc == ["body", "environment", "dependencies", 2, "pip"]
    assert "CONDARCHIVE_ALLOWED_PYPI_INDEXES" in caught.value.msg
    policy = PyPIPolicy(["https://pypi.org/simple"], [], "https://pypi.org/simple")
    spec = build_spec(
        environment=text,
        channels=None,
        dependencies=None,
        allowed_channels=["conda-forge"],
        channel_alias="https://conda.anaconda.org",
        pypi_policy=policy,
    )
    assert spec.dependencies == ("numpy", "pip")
    assert spec.canonical()["pypi"] == {
        "requirements": ["requests"],
        "indexes": ["https://pypi.org/simple"],
        "local": [],
    }
    # without a PyPI part the canonical form (so the spec hash) has no pypi key
    assert "pypi" not in spec_of(["numpy"]).canonical()


@pytest.mark.parametrize(
    ("dependencies", "needle"),
    [
        (["numpy >>1"], "numpy >>1"),
        (["numpy=<1"], "numpy=<1"),
        ([">=1.2"], ">=1.2"),
        (["numpy[foo=bar]"], "numpy[foo=bar]"),
        (["numpy", 3], "match spec string"),
        (["numpy", ""], "match spec string"),
    ],
)
def test_invalid_match_spec_named(dependencies: list[Any], needle: str) -> None:
    with pytest.raises(InputError) as caught:
        spec_of(dependencies)
    assert needle in caught.value.msg
    assert caught.value.loc[:2] == ["body", "dependencies"]


# --- targets --------------------------------------------------------------------------------


def test_every_platform_has_documented_defaults() -> None:
    for platform in PLATFORMS:
        (target,) = parse_targets([platform], ["targets"])
        assert target == Target(platform, platform, tuple(sorted(target.virtual_packages)))
        names = {vp.split("=")[0] for vp in target.virtual_packages}
        assert "__archspec" in names and "__cuda" not in names
        assert set(target.virtual_packages) == set(DEFAULT_VIRTUAL_PACKAGES[platform])
    linux = parse_targets(["linux-64"], ["t"])[0].virtual_packages
    assert {"__glibc=2.28=0", "__linux=5.10=0", "__unix=0=0", "__archspec=1=x86_64"} == set(linux)
    assert "__osx=11.0=0" in parse_targets(["osx-arm64"], ["t"])[0].virtual_packages
    assert "__win=0=0" in parse_targets(["win-64"], ["t"])[0].virtual_packages


@pytest.mark.parametrize(
    ("shorthand", "platform", "cuda"),
    [
        ("linux-64-cuda12", "linux-64", "__cuda=12=0"),
        ("linux-64-cuda12.4", "linux-64", "__cuda=12.4=0"),
        ("linux-aarch64-cuda11.8", "linux-aarch64", "__cuda=11.8=0"),
        ("win-64-cuda12", "win-64", "__cuda=12=0"),
    ],
)
def test_cuda_shorthand(shorthand: str, platform: str, cuda: str) -> None:
    (target,) = parse_targets([shorthand], ["t"])
    assert (target.name, target.platform) == (shorthand, platform)
    assert set(target.virtual_packages) == {*DEFAULT_VIRTUAL_PACKAGES[platform], cuda}


def test_virtual_packages_override_defaults_by_name() -> None:
    (target,) = parse_targets(
        [
            {
                "name": "gpu",
                "platform": "linux-64",
                "virtual_packages": ["__cuda=12.4", "__glibc 2.28", "__archspec=1=x86_64_v3"],
            }
        ],
        ["t"],
    )
    assert target.virtual_packages == (
        "__archspec=1=x86_64_v3",
        "__cuda=12.4=0",
        "__glibc=2.28=0",
        "__linux=5.10=0",
        "__unix=0=0",
    )
    vps = {str(vp.name.normalized): str(vp.version) for vp in target.rattler_virtual_packages()}
    assert vps["__glibc"] == "2.28" and vps["__cuda"] == "12.4"


@pytest.mark.parametrize(
    ("targets", "loc", "needle"),
    [
        (["linux-32"], ["t", 0], "unknown platform 'linux-32'"),
        (["linux-64", "win-32"], ["t", 1], "unknown platform 'win-32'"),
        (["linux-64-cuda"], ["t", 0], "unknown platform 'linux-64-cuda'"),
        (["foo-cuda12"], ["t", 0], "unknown platform 'foo-cuda12'"),
        ([{"platform": "noarch"}], ["t", 0, "platform"], "unknown platform 'noarch'"),
        (["linux-64", "linux-64"], ["t"], "duplicate target name(s): linux-64"),
        (
            ["linux-64", {"name": "linux-64", "platform": "linux-64"}],
            ["t"],
            "duplicate target name(s): linux-64",
        ),
        (
            [{"name": "gpu", "platform": "linux-64", "virtual_packages": ["cuda=12"]}],
            ["t", 0, "virtual_packages", 0],
            "'cuda=12'",
        ),
        (
            [{"name": "gpu", "platform": "linux-64", "virtual_packages": ["__cuda=1=2=3"]}],
            ["t", 0, "virtual_packages", 0],
            "'__cuda=1=2=3'",
        ),
        ([{"name": "a b", "platform": "linux-64"}], ["t", 0, "name"], "target name"),
        ([], ["t"], "at least one target"),
    ],
)
def test_bad_targets_refused(targets: list[Any], loc: list[Any], needle: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_targets(targets, ["t"])
    assert caught.value.loc == loc
    assert needle in caught.value.msg


# --- the channel allowlist ------------------------------------------------------------------


@pytest.mark.parametrize(
    "channel",
    [
        "conda-forge",
        "conda-forge/label/dev",
        "bioconda",
        "pytorch",
        "nvidia",
        "defaults",
        "https://conda.anaconda.org/conda-forge",
        "https://conda.anaconda.org/conda-forge/label/dev/",
        "https://repo.anaconda.com/pkgs/main",
        "https://repo.anaconda.com/pkgs/msys2",
    ],
)
def test_default_allowlist_admits_public_channels(channel: str) -> None:
    assert resolve_allowed_channel(channel, DEFAULT_ALLOWED, ALIAS)


@pytest.mark.parametrize(
    ("channel", "needle"),
    [
        ("conda-forge-evil", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("https://conda.anaconda.org/conda-forge-evil", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("evil", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("https://repo.anaconda.com/pkgs/mainframe", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("https://repo.anaconda.com/pkgs", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("https://repo.anaconda.com.evil.org/pkgs/main", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("http://127.0.0.1:8000/chan", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("http://localhost/chan", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("http://[::1]/chan", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("http://169.254.169.254/latest", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("file:///etc", "not in CONDARCHIVE_ALLOWED_CHANNELS"),
        ("https://user:secret@conda.anaconda.org/conda-forge", "credentials"),
        ("https://token@conda.anaconda.org/conda-forge", "credentials"),
        ("ftp://conda.anaconda.org/conda-forge", "http, https or file"),
        # Dot segments (plain, percent-encoded, backslashed) are resolved by the URL
        # parser that fetches, so they must not slip past a prefix match.
        ("https://conda.anaconda.org/conda-forge/../evil", "conda-forge/../evil"),
        ("https://conda.anaconda.org/conda-forge/%2e%2e/evil", "conda-forge/%2e%2e/evil"),
        ("https://conda.anaconda.org/conda-forge/.%2E/evil", "conda-forge/.%2E/evil"),
        ("https://conda.anaconda.org/conda-forge\\..\\evil", "evil"),
        ("conda-forge/../evil", "not a channel name"),
        ("/etc/passwd", "not a channel name"),
    ],
)
def test_default_allowlist_refuses(channel: str, needle: str) -> None:
    with pytest.raises(ChannelError) as caught:
        resolve_allowed_channel(channel, DEFAULT_ALLOWED, ALIAS)
    assert needle in str(caught.value)


def test_loopback_and_file_only_when_listed() -> None:
    allowed = [*DEFAULT_ALLOWED, "http://127.0.0.1:9000", "file:///srv/channels/"]
    assert is_allowed("http://127.0.0.1:9000/chan", allowed, ALIAS)
    assert is_allowed("http://127.0.0.1:9000", allowed, ALIAS)
    assert is_allowed("file:///srv/channels/local", allowed, ALIAS)
    assert not is_allowed("http://127.0.0.1:9001/chan", allowed, ALIAS)
    assert not is_allowed("http://127.0.0.1:90000/chan", allowed, ALIAS)
    assert not is_allowed("http://localhost:9000/chan", allowed, ALIAS)
    assert not is_allowed("file:///srv/channels-evil/local", allowed, ALIAS)
    assert not is_allowed("file:///srv", allowed, ALIAS)
    for escape in ("file:///srv/channels/../../etc", "http://127.0.0.1:9000/chan/../../x"):
        with pytest.raises(ChannelError):
            resolve_allowed_channel(escape, allowed, ALIAS)


@pytest.mark.parametrize(
    "dependency",
    [
        "conda-forge-evil::numpy",
        "https://conda.anaconda.org/conda-forge-evil::numpy",
        'numpy[channel="https://conda.anaconda.org/conda-forge-evil"]',
        "https://conda.anaconda.org/conda-forge/../evil::numpy",
        "https://user:secret@conda.anaconda.org/conda-forge::numpy",
        "http://127.0.0.1:9000/chan::numpy",
    ],
)
def test_channel_inside_a_spec_is_checked_too(dependency: str) -> None:
    with pytest.raises(InputError) as caught:
        spec_of([dependency])
    assert caught.value.loc == ["body", "dependencies", 0]


# --- the same refusals over HTTP ------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_server_errors(inprocess: InProcessService) -> Iterator[None]:
    before = len(inprocess.server_errors())
    yield
    assert inprocess.server_errors()[before:] == []


def refused(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/api/v1/solves", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    return detail


def env_body(channel_url: str, *dependency_lines: str, extra: str = "") -> dict[str, Any]:
    lines = "".join(f"  - {line}\n" for line in dependency_lines)
    return {
        "environment": f"name: t\nchannels:\n  - {channel_url}\ndependencies:\n{lines}{extra}",
        "targets": ["linux-64"],
    }


def test_http_bad_spec_in_environment_names_line(api: httpx.Client, channel_url: str) -> None:
    (item,) = refused(api, env_body(channel_url, "numlib", "libfoo", "'numlib >>1'"))
    assert item["loc"] == ["body", "environment", "dependencies", 2]
    assert "line 7" in item["msg"] and "numlib >>1" in item["msg"]


def test_http_bad_spec_in_list_names_spec(api: httpx.Client, channel_url: str) -> None:
    body = {"channels": [channel_url], "dependencies": ["numlib", "numlib=<1"]}
    (item,) = refused(api, {**body, "targets": ["linux-64"]})
    assert item["loc"] == ["body", "dependencies", 1]
    assert "numlib=<1" in item["msg"] and item["input"] == "numlib=<1"


def test_http_invalid_yaml_names_line(api: httpx.Client) -> None:
    (item,) = refused(api, {"environment": "channels: [a\ndependencies:\n  - numlib\n"})
    assert item["loc"] == ["body", "environment"]
    assert "not valid YAML at line" in item["msg"]


@pytest.mark.parametrize(
    "environment",
    ["just a string", "- a\n- list\n", "channels: []\n", "dependencies: numlib\n"],
)
def test_http_environment_of_wrong_shape(api: httpx.Client, environment: str) -> None:
    (item,) = refused(api, {"environment": environment})
    assert item["loc"][:2] == ["body", "environment"]


def test_http_pip_section_is_accepted_and_needs_python(api: httpx.Client, channel_url: str) -> None:
    response = api.post("/api/v1/solves", json=env_body(channel_url, "numlib", "pip:\n    - x"))
    assert response.status_code == 202, response.text
    job = wait_for_solve(api, response.json()["id"])
    assert job["status"] == "failed" and job["error"]["kind"] == "unsatisfiable"
    assert "no python package" in job["error"]["message"]
    (item,) = refused(api, env_body(channel_url, "numlib", "pip:\n    - --pre"))
    assert item["loc"] == ["body", "environment", "dependencies", 1, "pip", 0]


@pytest.mark.parametrize(
    ("targets", "loc", "needle"),
    [
        (["linux-32"], ["body", "targets", 0], "unknown platform 'linux-32'"),
        (["linux-64", "osx-32"], ["body", "targets", 1], "unknown platform 'osx-32'"),
        ([{"platform": "solaris"}], ["body", "targets", 0, "platform"], "'solaris'"),
        (["linux-64", "linux-64"], ["body", "targets"], "duplicate target"),
        (
            [{"name": "g", "platform": "linux-64", "virtual_packages": ["cuda"]}],
            ["body", "targets", 0, "virtual_packages", 0],
            "'cuda'",
        ),
        ([], ["body", "targets"], "at least one target"),
    ],
)
def test_http_bad_targets(
    api: httpx.Client, channel_url: str, targets: list[Any], loc: list[Any], needle: str
) -> None:
    body = {"channels": [channel_url], "dependencies": ["numlib"], "targets": targets}
    (item,) = refused(api, body)
    assert item["loc"] == loc and needle in item["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"channels": ["x"], "dependencies": ["numlib"], "targets": [{"name": "x"}]},
        {
            "channels": ["x"],
            "dependencies": ["numlib"],
            "targets": [{"platform": "linux-64", "gpu": 1}],
        },  # noqa: E501
        {"channels": ["x"], "dependencies": ["numlib"], "exclude_newer": "last tuesday"},
        {"channels": ["x"], "dependencies": ["numlib"], "channel_priority": "loose"},
        {"channels": "x", "dependencies": ["numlib"]},
        {"environment": 42},
        {"dependencies": ["numlib"], "surprise": True},
    ],
)
def test_http_malformed_body_fields(api: httpx.Client, body: dict[str, Any]) -> None:
    for item in refused(api, body):
        assert item["loc"][0] == "body"


def test_http_not_json(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/solves", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["detail"]


@pytest.mark.parametrize(
    ("channel", "needle"),
    [
        ("conda-forge", "conda-forge"),
        ("{server}-evil/testchan", "-evil"),
        ("{server}0/testchan", "0/testchan"),
        ("http://localhost:{port}/testchan", "localhost"),
        ("http://127.0.0.1:1/testchan", "127.0.0.1:1"),
        ("file:///etc", "file:///etc"),
        ("http://user:pw@127.0.0.1:{port}/testchan", "credentials"),
        ("{server}/testchan/%2e%2e/testchan", "%2e%2e"),
    ],
)
def test_http_channel_allowlist(
    api: httpx.Client, inprocess: InProcessService, channel: str, needle: str
) -> None:
    server = inprocess.env["CONDARCHIVE_ALLOWED_CHANNELS"]
    channel = channel.format(server=server, port=server.rsplit(":", 1)[1])
    (item,) = refused(api, {"channels": [channel], "dependencies": ["numlib"]})
    assert item["loc"] == ["body", "channels", 0]
    assert needle in item["msg"]
    if "%2e" in channel:
        return  # inside a spec, py-rattler resolves the dots first, and checks what it fetches
    (item,) = refused(
        api, {"channels": [f"{server}/testchan"], "dependencies": [f"{channel}::numlib"]}
    )
    assert item["loc"] == ["body", "dependencies", 0]


def test_http_same_spec_hash_for_equivalent_requests(api: httpx.Client, channel_url: str) -> None:
    """Checked through the service: the spec_hash it reports is equal for equivalent specs."""
    a = api.post(
        "/api/v1/solves",
        json={
            "channels": [channel_url],
            "dependencies": ["numlib=1.26", "libfoo"],
            "targets": ["osx-arm64"],
        },
    )
    b = api.post(
        "/api/v1/solves",
        json={
            "environment": (
                f"name: other\nchannels:\n  - {channel_url}/\n"
                "dependencies:\n  - libfoo\n  - numlib 1.26.*\n  - numlib=1.26\n"
            ),
            "targets": [{"platform": "osx-arm64"}],
        },
    )
    assert a.status_code in (200, 202) and b.status_code in (200, 202)
    assert a.json()["spec_hash"] == b.json()["spec_hash"]
    assert a.json()["request_hash"] == b.json()["request_hash"]
    # Another name and text: a job of its own (each job shows its own spec, issue 12).
    assert a.json()["id"] != b.json()["id"]


def test_defaults_channel_in_a_spec_is_refused_with_the_alternative() -> None:
    """`defaults::pkg` would resolve to conda.anaconda.org/defaults; say what to write instead."""
    from app.core.specs import build_spec
    from app.errors import InputError

    with pytest.raises(InputError) as caught:
        build_spec(
            environment=None,
            channels=["conda-forge"],
            dependencies=["numpy", "defaults::scipy>=1"],
            allowed_channels=["conda-forge", "https://repo.anaconda.com/pkgs/main"],
            channel_alias="https://conda.anaconda.org",
        )
    assert caught.value.loc == ["body", "dependencies", 1]
    assert "https://repo.anaconda.com/pkgs/main::" in caught.value.msg
