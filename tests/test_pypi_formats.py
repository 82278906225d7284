"""Every lockfile format carries a lock's PyPI part, and the real tool reads it back:
conda-lock's parser, py-rattler, pip (--require-hashes), packaging.pylock and uv."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import rattler
import yaml

from tests.support.inprocess import InProcessClient
from tests.support.pypi_world import PyPIWorld, lock_of

TARGETS = ["linux-64", "osx-arm64"]


@pytest.fixture(scope="module")
def lock(pypi_api: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    """Platform wheels per target, a pure dependency, a package held to conda's msgpack,
    and the researcher's own code."""
    environment = world.environment(
        "fast-thing", "uses-msgpack==1.0", "-e .", conda=("python=3.12", "msgpack-python")
    )
    return lock_of(pypi_api, {"environment": environment, "targets": TARGETS})


@pytest.fixture(scope="module")
def pure_lock(pypi_api: InProcessClient, world: PyPIWorld) -> dict[str, Any]:
    """Only py3-none-any wheels: installable by this (3.11) interpreter's pip."""
    return lock_of(
        pypi_api, {"environment": world.environment("pure-dep"), "targets": ["linux-64"]}
    )


def get(api: InProcessClient, path: str) -> bytes:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.content


def files_of(lock: dict[str, Any], target: str) -> dict[str, str]:
    """filename -> sha256 of the target's PyPI files."""
    return {p["filename"]: p["sha256"] for p in lock["targets"][target]["pypi_packages"]}


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_NO_CACHE_DIR="1")
    command = [sys.executable, "-m", "pip", "--isolated", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


# --- requirements/{target}.txt ----------------------------------------------------------


def test_requirements_txt_pins_every_file_by_hash(
    pypi_api: InProcessClient, lock: dict[str, Any], world: PyPIWorld
) -> None:
    text = get(pypi_api, f"/l/{lock['id']}/requirements/linux-64.txt").decode()
    options = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert options[0] == f"--index-url {world.index.url}"
    for package in lock["targets"]["linux-64"]["pypi_packages"]:
        assert f"{package['name']}=={package['version']} \\" in text
        assert f"--hash=sha256:{package['sha256']}" in text
    assert "# local, not archived: -e ." in text
    assert f"lock {lock['id']}" in text


def test_pip_downloads_exactly_the_locked_files_for_the_target(
    pypi_api: InProcessClient, lock: dict[str, Any], tmp_path: Path
) -> None:
    """The lock's Python is 3.12 (this pip runs on 3.11): pip download as for the target."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(get(pypi_api, f"/l/{lock['id']}/requirements/linux-64.txt"))
    result = pip(
        "download",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        "--abi",
        "cp312",
        "--platform",
        "manylinux2014_x86_64",
        "-r",
        str(requirements),
        "-d",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    got = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (tmp_path / "out").iterdir()
    }
    assert got == files_of(lock, "linux-64")


def test_pip_install_require_hashes_installs_the_pure_lock(
    pypi_api: InProcessClient, pure_lock: dict[str, Any], tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_bytes(get(pypi_api, f"/l/{pure_lock['id']}/requirements/linux-64.txt"))
    result = pip(
        "install",
        "--require-hashes",
        "--no-deps",
        "-r",
        str(requirements),
        "--target",
        str(tmp_path / "site"),
    )
    assert result.returncode == 0, result.stderr
    installed = sorted(p.name for p in (tmp_path / "site").glob("*.dist-info"))
    assert installed == ["pure_dep-2.0.dist-info"]


def test_pip_refuses_a_file_whose_hash_is_not_the_locked_one(
    pypi_api: InProcessClient, pure_lock: dict[str, Any], tmp_path: Path
) -> None:
    text = get(pypi_api, f"/l/{pure_lock['id']}/requirements/linux-64.txt").decode()
    sha256 = pure_lock["targets"]["linux-64"]["pypi_packages"][0]["sha256"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text.replace(sha256, "0" * 64))
    result = pip(
        "install", "--no-deps", "-r", str(requirements), "--target", str(tmp_path / "site")
    )
    assert result.returncode != 0
    assert "HASH" in result.stderr.upper()


def test_requirements_for_an_unknown_target_names_the_targets(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    response = pypi_api.get(
        f"/l/{lock['id']}/requirements/win-64.txt", headers={"Accept": "application/json"}
    )
    assert response.status_code == 404
    assert set(response.json()["links"]) == set(TARGETS)


# --- pylock/{target}.toml -----------------------------------------------------------------


def test_pylock_toml_is_valid_pep_751_and_selects_the_target_files(
    pypi_api: InProcessClient, lock: dict[str, Any], world: PyPIWorld
) -> None:
    from packaging.markers import default_environment
    from packaging.pylock import Pylock
    from packaging.tags import Tag

    body = get(pypi_api, f"/l/{lock['id']}/pylock/osx-arm64.toml")
    pylock = Pylock.from_dict(tomllib.loads(body.decode()))
    assert pylock.created_by == "condarchive"
    assert str(pylock.requires_python) == "==3.12.*"
    environment = {
        **default_environment(),
        "sys_platform": "darwin",
        "platform_machine": "arm64",
        "python_version": "3.12",
        "python_full_version": "3.12.4",
    }
    tags = [Tag("cp312", "cp312", "macosx_11_0_arm64"), Tag("py3", "none", "any")]
    selected = {
        package.name: distribution
        for package, distribution in pylock.select(environment=environment, tags=tags)
    }
    assert {d.filename: d.hashes["sha256"] for d in selected.values()} == files_of(
        lock, "osx-arm64"
    )
    assert all(p.index == world.index.url for p in pylock.packages)
    assert "# local, not archived: -e ." in body.decode()


def test_uv_reads_pylock_and_installs_its_files(
    pypi_api: InProcessClient, pure_lock: dict[str, Any], tmp_path: Path
) -> None:
    """uv holds the file to its Python (conda's 3.12, which this 3.11 test interpreter is
    not), and without that line installs exactly the locked wheel, hash-checked."""
    from uv import find_uv_bin

    text = get(pypi_api, f"/l/{pure_lock['id']}/pylock/linux-64.toml").decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.update(UV_NO_CONFIG="1", UV_PREVIEW_FEATURES="pylock")

    def uv_install(content: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "pylock.toml"
        path.write_text(content)
        command = [find_uv_bin(), "pip", "install", "--no-cache", "--python", sys.executable]
        command += ["--target", str(tmp_path / "site"), "-r", str(path)]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    refused = uv_install(text)
    assert refused.returncode != 0
    assert "==3.12.*" in refused.stderr
    assert 'requires-python = "==3.12.*"\n' in text
    result = uv_install(text.replace('requires-python = "==3.12.*"\n', ""))
    assert result.returncode == 0, result.stderr
    installed = sorted(p.name for p in (tmp_path / "site").glob("*.dist-info"))
    assert installed == ["pure_dep-2.0.dist-info"]


# --- conda-lock.yml, pixi.lock, environment.yml, explicit ------------------------------------


def test_conda_lock_yml_has_pip_entries_conda_lock_reads(
    pypi_api: InProcessClient, lock: dict[str, Any], tmp_path: Path
) -> None:
    from conda_lock.lockfile import parse_conda_lock_file
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1

    body = get(pypi_api, f"/l/{lock['id']}/conda-lock.yml")
    path = tmp_path / "conda-lock.yml"
    path.write_bytes(body)
    content = yaml.safe_load(body)
    content.pop("version")
    LockfileV1.model_validate(content)
    parsed = parse_conda_lock_file(path)
    pip_entries = {
        (p.platform, p.name, p.version, p.url, p.hash.sha256)
        for p in parsed.package
        if p.manager == "pip"
    }
    expected = {
        (t["platform"], p["name"], p["version"], p["url"], p["sha256"])
        for t in lock["targets"].values()
        for p in t["pypi_packages"]
    }
    assert pip_entries == expected
    fast = next(p for p in parsed.package if p.name == "fast-thing" and p.platform == "linux-64")
    assert fast.dependencies == {"pure-dep": ">=1"}
    assert fast.categories == {"main"}
    assert "-e ." in body.decode().split("version: 1", 1)[0]  # said in the header


def test_pixi_lock_has_pypi_packages_py_rattler_reads(
    pypi_api: InProcessClient, lock: dict[str, Any], tmp_path: Path, world: PyPIWorld
) -> None:
    path = tmp_path / "pixi.lock"
    path.write_bytes(get(pypi_api, f"/l/{lock['id']}/pixi.lock"))
    environment = rattler.LockFile.from_path(path).default_environment()
    assert environment is not None
    by_platform = environment.pypi_packages()
    for name, target in lock["targets"].items():
        got = {
            (p.name, p.version, p.location, p.hashes.sha256.hex(), p.requires_python)
            for p in by_platform[name]
        }
        expected = {
            (p["name"], p["version"], p["url"], p["sha256"], p["requires_python"])
            for p in target["pypi_packages"]
        }
        assert got == expected
        fast = next(p for p in by_platform[name] if p.name == "fast-thing")
        assert fast.requires_dist == ["pure-dep>=1"]
        # and the conda part is still there
        assert len(environment.conda_repodata_records()[name]) == len(target["packages"])
    assert f"- {world.index.url}" in path.read_text()  # the environment's index


def test_environment_yml_has_a_pinned_pip_section(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    text = get(pypi_api, f"/l/{lock['id']}/environment.yml?target=linux-64").decode()
    document = yaml.safe_load(text)
    pip_section = next(d["pip"] for d in document["dependencies"] if isinstance(d, dict))
    assert pip_section == [
        f"{p['name']}=={p['version']}"
        for p in sorted(lock["targets"]["linux-64"]["pypi_packages"], key=lambda p: p["name"])
    ]
    assert "# local, not archived: -e ." in text


def test_explicit_stays_conda_only_and_points_at_the_requirements(
    pypi_api: InProcessClient, lock: dict[str, Any]
) -> None:
    text = get(pypi_api, f"/l/{lock['id']}/explicit/linux-64.txt").decode()
    urls = [line for line in text.splitlines() if not line.startswith(("#", "@"))]
    assert urls and all(".whl" not in u for u in urls)
    assert f"/l/{lock['id']}/requirements/linux-64.txt" in text


def test_formats_without_pypi_part_are_unchanged(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    plain = lock_of(pypi_api, {"environment": world.environment(), "targets": ["linux-64"]})
    explicit = get(pypi_api, f"/l/{plain['id']}/explicit/linux-64.txt").decode()
    assert "requirements" not in explicit
    assert "pip" not in get(pypi_api, f"/l/{plain['id']}/environment.yml").decode()
    assert b"manager: pip" not in get(pypi_api, f"/l/{plain['id']}/conda-lock.yml")
    requirements = get(pypi_api, f"/l/{plain['id']}/requirements/linux-64.txt").decode()
    assert "no PyPI packages" in requirements


# --- ?source=archive -----------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("app.archive.pypi_views") is None,
    reason="this tree has no PyPI archive (app/archive/pypi_views.py)",
)
@pytest.mark.parametrize(
    ("fmt", "pip_line"), [("requirements", "fast-thing"), ("pylock", "pure-dep==1.0")]
)
def test_archive_source_points_at_the_archived_copies(
    pypi_api: InProcessClient, world: PyPIWorld, fmt: str, pip_line: str
) -> None:
    """A lock of its own per format: archiving is per lock, and the 409 comes first."""
    from packaging.pylock import Pylock

    lock = lock_of(pypi_api, {"environment": world.environment(pip_line), "targets": TARGETS})
    path = f"/l/{lock['id']}/{fmt}/linux-64.{'txt' if fmt == 'requirements' else 'toml'}"
    before = pypi_api.get(f"{path}?source=archive", headers={"Accept": "application/json"})
    assert before.status_code == 409
    for filename in files_of(lock, "linux-64"):  # each file not archived is named
        assert filename in before.json()["detail"]

    assert pypi_api.post(f"/api/v1/locks/{lock['id']}/archive").status_code in (200, 202)
    text = get(pypi_api, f"{path}?source=archive").decode()
    if fmt == "requirements":
        assert "--index-url" not in text
        urls = [
            line.split(" @ ", 1)[1].removesuffix(" \\")
            for line in text.splitlines()
            if " @ " in line
        ]
    else:
        pylock = Pylock.from_dict(tomllib.loads(text))
        assert all(p.index is None for p in pylock.packages)
        urls = [w.url for p in pylock.packages for w in p.wheels or []]
    assert len(urls) == len(files_of(lock, "linux-64"))
    got = {}
    for url in urls:
        assert "/pypi/files/" in url and not url.startswith(world.index.base_url)
        response = pypi_api.get(url)
        assert response.status_code == 200, url
        got[url.rsplit("/", 1)[1]] = hashlib.sha256(response.content).hexdigest()
    assert got == files_of(lock, "linux-64")
    # and the upstream rendering is unchanged by the archive
    assert world.index.base_url in get(pypi_api, path).decode()
