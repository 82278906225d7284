"""The `pip:` part of an environment, locked through the API: per target after the conda
solve, held to conda's packages, with local lines recorded, exclude_newer, and each
failure a job error of its kind (or a 422 for what the request itself gets wrong)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import InProcessClient
from tests.support.pypi_world import BETWEEN, PyPIWorld, lock_of, solve_job


def by_name(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in target["pypi_packages"]}


def test_pip_section_locks_per_target_wheels_and_holds_conda_packages(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    environment = world.environment(
        "fast-thing", "uses-msgpack==1.0", "-e .", conda=("python=3.12", "msgpack-python")
    )
    lock = lock_of(pypi_api, {"environment": environment, "targets": ["linux-64", "osx-arm64"]})
    linux, mac = lock["targets"]["linux-64"], lock["targets"]["osx-arm64"]
    assert by_name(linux)["fast-thing"]["filename"].endswith("manylinux2014_x86_64.whl")
    assert by_name(mac)["fast-thing"]["filename"].endswith("macosx_11_0_arm64.whl")
    for target in (linux, mac):
        packages = by_name(target)
        # msgpack comes from conda (msgpack-python), at conda's version, once
        assert "msgpack" not in packages
        assert "msgpack-python" in {p["name"] for p in target["packages"]}
        assert set(packages) == {"fast-thing", "pure-dep", "uses-msgpack"}
        assert packages["pure-dep"]["version"] == "2.0"
        assert packages["fast-thing"]["requires"] == ["pure-dep>=1"]
        assert packages["pure-dep"]["requires_python"] is None
        for package in packages.values():
            assert len(package["sha256"]) == 64 and package["size"] > 0
            assert package["url"].startswith(world.index.base_url)
        assert target["pypi_local"] == ["-e ."]
    assert lock["provenance"]["pypi"]["resolver"]["name"] == "uv"
    assert lock["provenance"]["pypi"]["indexes"] == [world.index.url]


def test_json_pypi_dependencies_and_exclude_newer(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    body = {
        "channels": [world.channel_url],
        "dependencies": ["python=3.12"],
        "pypi_dependencies": ["pure-dep"],
        "pypi_indexes": [world.index.url],
        "targets": ["linux-64"],
        "exclude_newer": BETWEEN.isoformat(),
    }
    lock = lock_of(pypi_api, body)
    assert by_name(lock["targets"]["linux-64"])["pure-dep"]["version"] == "1.0"
    assert by_name(lock["targets"]["linux-64"])["pure-dep"]["requires_python"] == ">=3.8"


def test_a_lock_without_pypi_part_has_no_pypi_fields_in_its_id(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    plain = lock_of(pypi_api, {"environment": world.environment(), "targets": ["win-64"]})
    assert plain["targets"]["win-64"]["pypi_packages"] == []
    only_local = lock_of(
        pypi_api, {"environment": world.environment("-e ."), "targets": ["win-64"]}
    )
    # local lines are part of what the lock records, so they make another lock
    assert only_local["id"] != plain["id"]
    assert only_local["targets"]["win-64"]["pypi_local"] == ["-e ."]


def test_unsatisfiable_pypi_requirement_is_a_job_error(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    job = solve_job(
        pypi_api, {"environment": world.environment("future-only"), "targets": ["linux-64"]}
    )
    assert job["status"] == "failed"
    assert job["error"]["kind"] == "unsatisfiable"
    assert "future-only" in job["error"]["message"]
    assert job["error"]["detail"]["target"] == "linux-64"


def test_no_python_in_the_conda_solution_fails_clearly(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    environment = world.environment("pure-dep", conda=("zlib-lite",))
    job = solve_job(pypi_api, {"environment": environment, "targets": ["linux-64"]})
    assert job["status"] == "failed"
    assert job["error"]["kind"] == "unsatisfiable"
    assert "no python package" in job["error"]["message"]


def test_missing_package_index_unreachable_is_an_index_error(
    pypi_api: InProcessClient, world: PyPIWorld, tmp_path: Path
) -> None:
    # an allowed index prefix where nothing answers
    body = {
        "channels": [world.channel_url],
        "dependencies": ["python=3.12"],
        "pypi_dependencies": ["pure-dep"],
        "pypi_indexes": [f"{world.index.base_url}/nothing-here"],
        "targets": ["linux-64"],
    }
    job = solve_job(pypi_api, body)
    assert job["status"] == "failed"
    assert job["error"]["kind"] in ("index", "unsatisfiable"), job["error"]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (
            {"pypi_indexes": ["https://evil.example/simple"]},
            ["body", "pypi_indexes", 0],
            "CONDARCHIVE_ALLOWED_PYPI_INDEXES",
        ),
        (
            {"pypi_dependencies": ["--index-url https://evil.example/simple", "x"]},
            ["body", "pypi_dependencies"],
            "CONDARCHIVE_ALLOWED_PYPI_INDEXES",
        ),
        (
            {"pypi_dependencies": ["thing @ https://evil.example/thing-1.0.tar.gz"]},
            ["body", "pypi_dependencies"],
            "CONDARCHIVE_ALLOWED_PYPI_INDEXES",
        ),
        (
            {"pypi_dependencies": ["git+https://evil.example/org/repo.git@v1#egg=repo"]},
            ["body", "pypi_dependencies"],
            "CONDARCHIVE_ALLOWED_VCS",
        ),
        ({"pypi_dependencies": ["--pre"]}, ["body", "pypi_dependencies", 0], "only --index-url"),
        ({"pypi_dependencies": ["not a requirement!"]}, ["body", "pypi_dependencies", 0], "pip"),
    ],
)
def test_refused_pypi_input_is_a_422_naming_where(
    pypi_api: InProcessClient, world: PyPIWorld, body: dict, loc: list, words: str
) -> None:
    response = pypi_api.post(
        "/api/v1/solves",
        json={"channels": [world.channel_url], "dependencies": ["python"], **body},
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert words in detail["msg"]


def test_environment_of_only_local_lines_is_a_422(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    environment = f"channels:\n  - {world.channel_url}\ndependencies:\n  - pip:\n    - -e .\n"
    response = pypi_api.post("/api/v1/solves", json={"environment": environment})
    assert response.status_code == 422
    assert "only local code" in response.json()["detail"][0]["msg"]


def test_pip_lines_count_against_the_dependency_limit(
    pypi_api: InProcessClient, world: PyPIWorld
) -> None:
    lines = [f"pkg{i}" for i in range(501)]
    response = pypi_api.post(
        "/api/v1/solves",
        json={"environment": world.environment(*lines)},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["ctx"]["setting"] == "CONDARCHIVE_MAX_DEPENDENCIES"


def test_uv_reaches_only_allowed_hosts(
    pypi_api: InProcessClient, world: PyPIWorld, tmp_path: Path
) -> None:
    """An allowed index whose pages point the files at a host that is not allowed: uv's
    fetches go through the egress proxy, which refuses them; that host sees nothing."""
    from tests.support.pypi_index import PyPIIndex

    elsewhere = PyPIIndex(tmp_path / "elsewhere")
    elsewhere.add_wheel("pure-dep", "1.0")
    with elsewhere.serving():
        world.index.files_elsewhere = elsewhere.base_url
        try:
            job = solve_job(
                pypi_api,
                {"environment": world.environment("pure-dep==1.0"), "targets": ["linux-64"]},
            )
        finally:
            world.index.files_elsewhere = None
        assert job["status"] == "failed"
        assert job["error"]["kind"] == "index", job["error"]
        assert elsewhere.requests == []
