"""app/solve/pypi.py against the hermetic index: the file each target installs, conda's
packages held, exclude_newer, each failure kind, and what the uv subprocess can see."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.targets import Target, parse_target
from app.solve.pypi import (
    GIT_ENV,
    PyPIFailure,
    PyPIPackage,
    PyPIRequest,
    python_platform,
    resolve,
    uv_environment,
    wheel_preference,
)
from tests.support.pypi_index import PyPIIndex

MANYLINUX_2014 = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
MACOS_ARM = "cp312-cp312-macosx_11_0_arm64"
OLD, NEW = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    index = PyPIIndex(tmp_path_factory.mktemp("pypi"))
    for tag in (MANYLINUX_2014, MACOS_ARM, "cp312-cp312-win_amd64"):
        index.add_wheel("fast-thing", "1.0", tag=tag, requires=["pure-dep>=1"])
    index.add_wheel("pure-dep", "1.0", upload_time=OLD, requires_python=">=3.8")
    index.add_wheel("pure-dep", "2.0", upload_time=NEW)
    # manylinux_2_28 only, and manylinux_2_28 with an sdist to fall back to
    index.add_wheel("new-glibc", "1.0", tag="cp312-cp312-manylinux_2_28_x86_64")
    index.add_wheel("new-glibc-sd", "1.0", tag="cp312-cp312-manylinux_2_28_x86_64")
    index.add_sdist("new-glibc-sd", "1.0")
    index.add_wheel("macos14", "1.0", tag="cp312-cp312-macosx_14_0_arm64")
    # conda provides held-lib; PyPI's 2.0 pulls in a package a held name must not bring
    index.add_wheel("uses-held", "1.0", requires=["held-lib>=1"])
    index.add_wheel("held-lib", "1.0", upload_time=OLD)
    index.add_wheel("held-lib", "2.0", upload_time=NEW, requires=["not-from-conda"])
    index.add_wheel("not-from-conda", "1.0")
    index.add_sdist("sdist-only", "1.0", requires=["pure-dep<2"])
    with index.serving():
        yield index


def request(index: PyPIIndex, tmp_path: Path, *requirements: str, **changes) -> PyPIRequest:
    fields = {
        "requirements": requirements,
        "index_urls": (index.url,),
        "python_version": "3.12",
        "target": parse_target("linux-64", []),
        "cache_dir": tmp_path / "cache",
        **changes,
    }
    return PyPIRequest(**fields)


def target(platform: str, *virtual: str) -> Target:
    return parse_target({"platform": platform, "virtual_packages": list(virtual)}, [])


def files(packages: list[PyPIPackage]) -> dict[str, str]:
    return {p.name: p.filename for p in packages}


def test_each_target_gets_its_own_wheel(index: PyPIIndex, tmp_path: Path) -> None:
    linux = resolve(request(index, tmp_path, "fast-thing"))
    mac = resolve(request(index, tmp_path, "fast-thing", target=target("osx-arm64")))
    windows = resolve(request(index, tmp_path, "fast-thing", target=target("win-64")))
    assert files(linux) == {
        "fast-thing": f"fast_thing-1.0-{MANYLINUX_2014}.whl",
        "pure-dep": "pure_dep-2.0-py3-none-any.whl",
    }
    assert files(mac)["fast-thing"] == f"fast_thing-1.0-{MACOS_ARM}.whl"
    assert files(windows)["fast-thing"] == "fast_thing-1.0-cp312-cp312-win_amd64.whl"
    for package in linux:  # what the lock records is what the index serves
        entry = index.file(package.filename)
        assert (package.url, package.sha256, package.size) == (
            index.file_url(entry.filename),
            entry.sha256,
            entry.size,
        )
    assert [p.name for p in linux] == sorted(p.name for p in linux)


def test_glibc_picks_the_manylinux_level(index: PyPIIndex, tmp_path: Path) -> None:
    new = resolve(request(index, tmp_path, "new-glibc", target=target("linux-64", "__glibc=2.28")))
    assert files(new) == {"new-glibc": "new_glibc-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"}
    old = target("linux-64", "__glibc=2.17")
    with pytest.raises(PyPIFailure) as failure:
        resolve(request(index, tmp_path, "new-glibc", target=old))
    assert failure.value.kind == "unsatisfiable" and "new-glibc" in failure.value.message
    # with an sdist beside the wheel, 2.17 gets the sdist (its static metadata, no build)
    fallback = resolve(request(index, tmp_path, "new-glibc-sd", target=old))
    assert files(fallback) == {"new-glibc-sd": "new_glibc_sd-1.0.tar.gz"}


def test_osx_version_picks_the_macos_wheel(index: PyPIIndex, tmp_path: Path) -> None:
    """uv assumes macOS 13.0 unless told: the target's __osx reaches it."""
    new = target("osx-arm64", "__osx=14.0")
    assert files(resolve(request(index, tmp_path, "macos14", target=new))) == {
        "macos14": "macos14-1.0-cp312-cp312-macosx_14_0_arm64.whl"
    }
    with pytest.raises(PyPIFailure, match="macos14") as failure:
        resolve(request(index, tmp_path, "macos14", target=target("osx-arm64", "__osx=11.0")))
    assert failure.value.kind == "unsatisfiable"


def test_conda_package_is_held_and_not_emitted(index: PyPIIndex, tmp_path: Path) -> None:
    free = resolve(request(index, tmp_path, "uses-held"))
    assert sorted(files(free)) == ["held-lib", "not-from-conda", "uses-held"]
    for conda_version in ("1.5", "2.0"):  # not on the index, and on it with dependencies
        held = resolve(
            request(index, tmp_path, "uses-held", conda_packages={"held-lib": conda_version})
        )
        assert files(held) == {"uses-held": "uses_held-1.0-py3-none-any.whl"}
    with pytest.raises(PyPIFailure) as failure:  # conda's version is held, not overridden
        resolve(request(index, tmp_path, "held-lib>=3", conda_packages={"held-lib": "2.0"}))
    assert failure.value.kind == "unsatisfiable"


def test_exclude_newer(index: PyPIIndex, tmp_path: Path) -> None:
    cutoff = datetime(2024, 6, 1, tzinfo=UTC)
    assert files(resolve(request(index, tmp_path, "pure-dep")))["pure-dep"].startswith(
        "pure_dep-2.0"
    )
    old = resolve(request(index, tmp_path, "pure-dep", exclude_newer=cutoff))
    assert [(p.name, p.version) for p in old] == [("pure-dep", "1.0")]
    # a held conda package (a stub without upload time) passes the cutoff
    held = resolve(
        request(
            index, tmp_path, "uses-held", exclude_newer=cutoff, conda_packages={"held-lib": "2.0"}
        )
    )
    assert files(held) == {"uses-held": "uses_held-1.0-py3-none-any.whl"}


def test_unsatisfiable_has_uvs_explanation(index: PyPIIndex, tmp_path: Path) -> None:
    with pytest.raises(PyPIFailure) as failure:
        resolve(request(index, tmp_path, "fast-thing", "pure-dep>5"))
    assert failure.value.kind == "unsatisfiable"
    assert "pure-dep>5" in failure.value.message and "No solution found" in failure.value.message
    with pytest.raises(PyPIFailure) as missing:
        resolve(request(index, tmp_path, "no-such-project"))
    assert missing.value.kind == "unsatisfiable" and "no-such-project" in missing.value.message


def test_dead_or_refusing_index(tmp_path: Path) -> None:
    gone = PyPIIndex(tmp_path / "gone")
    gone.add_wheel("pure-dep", "1.0")
    gone.start()
    gone.stop()
    with pytest.raises(PyPIFailure) as failure:
        resolve(request(gone, tmp_path, "pure-dep", timeout=60))
    assert failure.value.kind == "index", failure.value.message

    refusing = PyPIIndex(tmp_path / "refusing")
    refusing.add_wheel("pure-dep", "1.0")
    refusing.faults["/simple/"] = 403
    with refusing.serving():
        with pytest.raises(PyPIFailure) as failure:
            resolve(request(refusing, tmp_path, "pure-dep"))
    assert failure.value.kind == "index", failure.value.message
    assert "403" in failure.value.message


def test_builds_off_and_sdist_only(index: PyPIIndex, tmp_path: Path) -> None:
    on = resolve(request(index, tmp_path, "sdist-only"))  # static metadata: nothing built
    assert files(on) == {"pure-dep": "pure_dep-1.0-py3-none-any.whl",
                         "sdist-only": "sdist_only-1.0.tar.gz"}  # fmt: skip
    with pytest.raises(PyPIFailure) as failure:
        resolve(request(index, tmp_path, "sdist-only", builds_allowed=False))
    assert failure.value.kind == "build" and "sdist-only" in failure.value.message


def test_timeout_kills_uv(index: PyPIIndex, tmp_path: Path) -> None:
    with pytest.raises(PyPIFailure) as failure:
        resolve(request(index, tmp_path, "fast-thing", timeout=0.001))
    assert failure.value.kind == "timeout"


def test_uv_environment_is_built_not_inherited(
    index: PyPIIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDARCHIVE_DATABASE_URL", "postgresql://secret@db/condarchive")
    monkeypatch.setenv("CONDARCHIVE_BROKER_URL", "redis://secret@broker")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/site-ca.pem")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("GIT_SSL_CAINFO", raising=False)
    env = uv_environment(request(index, tmp_path, "x"), tmp_path, {})
    # only which CA certificates to trust is taken from the service's environment
    # git's own settings (app.solve.pypi.GIT_ENV: no config, http(s) only) are constants
    assert env.items() >= GIT_ENV.items()
    assert set(env) - set(GIT_ENV) == {
        "PATH",
        "HOME",
        "TMPDIR",
        "LC_ALL",
        "NO_COLOR",
        "SSL_CERT_FILE",
    }
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/site-ca.pem"
    proxied = uv_environment(
        request(index, tmp_path, "x", proxy_url="http://127.0.0.1:3128"), tmp_path, {}
    )
    assert proxied["HTTPS_PROXY"] == "http://127.0.0.1:3128"

    # end to end: a build backend uv runs records the environment and directory it got
    record = tmp_path / "build.json"
    index.add_sdist("records-build", "1.0", dynamic=True, buildable=True, build_record=record)
    resolved = resolve(request(index, tmp_path, "records-build"))
    assert files(resolved) == {"records-build": "records_build-1.0.tar.gz"}
    seen = json.loads(record.read_text())
    assert not [name for name in seen["environ"] if "CONDARCHIVE" in name or "PROXY" in name]
    assert "secret" not in json.dumps(seen["environ"])
    assert seen["environ"]["HOME"].startswith(str(Path(seen["environ"]["TMPDIR"]).parent))
    assert not Path(seen["environ"]["HOME"]).exists()  # the throwaway directory is gone
    assert str(Path.cwd()) not in seen["cwd"]


@pytest.mark.parametrize(
    ("platform", "virtual", "expected", "env"),
    [
        ("linux-64", [], "x86_64-manylinux_2_28", {}),  # targets.py's default __glibc
        ("linux-64", ["__glibc=2.28"], "x86_64-manylinux_2_28", {}),
        ("linux-64", ["__glibc=2.30"], "x86_64-manylinux_2_28", {}),  # uv has no 2_29, 2_30
        ("linux-64", ["__glibc=2.35"], "x86_64-manylinux_2_35", {}),
        ("linux-64", ["__glibc=2.99"], "x86_64-manylinux_2_40", {}),
        ("linux-aarch64", ["__glibc=2.28"], "aarch64-manylinux_2_28", {}),
        ("osx-64", ["__osx=11"], "x86_64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "11.0"}),
        ("osx-arm64", [], "aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "11.0"}),
        ("win-64", [], "x86_64-pc-windows-msvc", {}),
    ],
)
def test_python_platform(platform: str, virtual: list[str], expected: str, env: dict) -> None:
    assert python_platform(target(platform, *virtual)) == (expected, env)


def test_python_platform_defaults_and_refusals() -> None:
    bare = Target("bare", "linux-64", ())  # no virtual packages at all: conda-lock 4's
    assert python_platform(bare) == ("x86_64-manylinux_2_28", {})
    osx = Target("bare", "osx-64", ())
    assert python_platform(osx) == ("x86_64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "11.0"})
    for refused in (target("linux-64", "__glibc=2.12"), target("linux-ppc64le")):
        with pytest.raises(PyPIFailure) as failure:
            python_platform(refused)
        assert failure.value.kind == "platform"


def test_wheel_preference_is_the_installers() -> None:
    def best(*names: str) -> str:
        return min(({"name": n, "url": f"http://x/{n}"} for n in names), key=wheel_preference)[
            "name"
        ]

    assert best(f"a-1-{MANYLINUX_2014}.whl", "a-1-cp312-cp312-manylinux_2_28_x86_64.whl") == (
        "a-1-cp312-cp312-manylinux_2_28_x86_64.whl"
    )
    assert best("a-1-py3-none-any.whl", f"a-1-{MACOS_ARM}.whl") == f"a-1-{MACOS_ARM}.whl"
    assert best("a-1-cp38-abi3-win_amd64.whl", "a-1-cp312-cp312-win_amd64.whl") == (
        "a-1-cp312-cp312-win_amd64.whl"
    )
    assert best("a-1-cp312-cp312-macosx_10_9_universal2.whl", f"a-1-{MACOS_ARM}.whl") == (
        f"a-1-{MACOS_ARM}.whl"
    )
