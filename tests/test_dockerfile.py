"""`/l/{id}/Dockerfile?target=T`: a container recipe, read back by a Dockerfile parser from
PyPI, instruction by instruction, with every URL it fetches answered by the service.

No Docker engine runs here: the recipe is checked by parsing, not by a build.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from app.locks.dockerfile import BASE_IMAGE
from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import PyPIWorld
from tests.support.solving import solve_environment, solve_lock

PUBLIC_URL = "https://archive.example.org"


def parse(text: str, tmp_path: Path) -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(tmp_path))
    parser.content = text
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def instructions(items: list[dict[str, Any]]) -> list[str]:
    return [i["instruction"] for i in items]


def local(url: str) -> str:
    """A URL of the service, as a path its test client can ask for."""
    assert url.startswith(PUBLIC_URL), url
    return url.removeprefix(PUBLIC_URL)


@pytest.fixture(scope="module")
def conda_lock(api: InProcessClient, channel_url: str) -> str:
    return solve_lock(api, channel_url, ["numlib<1.26", "timely"], ["linux-64", "osx-arm64"])


def test_conda_target_recipe(api: InProcessClient, conda_lock: str, tmp_path: Path) -> None:
    response = api.get(f"/l/{conda_lock}/Dockerfile", params={"target": "linux-64"})
    assert response.status_code == 200, response.text
    base = api.base_url.__str__().rstrip("/")
    items = parse(response.text, tmp_path)
    assert instructions(items) == ["FROM", "LABEL", "ADD", "RUN", "ENV"]
    assert response.text.startswith("# syntax=docker/dockerfile:1\n")
    assert items[0]["value"] == f"--platform=linux/amd64 {BASE_IMAGE}"
    assert BASE_IMAGE.startswith("mambaorg/micromamba:")
    parser = DockerfileParser(path=str(tmp_path))
    parser.content = response.text
    assert parser.baseimage == BASE_IMAGE
    assert parser.labels["org.condarchive.lock"] == conda_lock
    assert parser.labels["org.opencontainers.image.source"] == f"{base}/l/{conda_lock}"
    chown, url, dest = shlex.split(items[2]["value"])
    assert chown == "--chown=$MAMBA_USER:$MAMBA_USER"
    assert url == f"{base}/l/{conda_lock}/explicit/linux-64.txt?source=archive"
    assert dest == "/tmp/explicit.txt"
    assert shlex.split(items[3]["value"]) == [
        *"micromamba create -y -n env -f /tmp/explicit.txt".split(),
        "&&",
        *"micromamba clean --all --yes".split(),
    ]
    assert parser.envs["ENV_NAME"] == "env"
    # no PyPI part: no pip step
    assert "python -m pip" not in response.text
    # the explicit URL is the archive's route (409 here: this service archives nothing)
    assert api.get(url.removeprefix(base)).status_code == 409
    again = api.get(f"/l/{conda_lock}/Dockerfile?target=linux-64")
    assert again.content == response.content
    assert again.headers["etag"] == response.headers["etag"]
    not_modified = api.get(
        f"/l/{conda_lock}/Dockerfile?target=linux-64",
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert not_modified.status_code == 304


def test_non_linux_target_is_409_and_says_why(api: InProcessClient, conda_lock: str) -> None:
    response = api.get(
        f"/l/{conda_lock}/Dockerfile?target=osx-arm64", headers={"Accept": "application/json"}
    )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "osx-arm64" in detail and "container runs Linux" in detail
    assert response.json()["links"] == {"linux-64": f"/l/{conda_lock}/Dockerfile?target=linux-64"}


def test_target_choice(api: InProcessClient, conda_lock: str) -> None:
    json_only = {"Accept": "application/json"}
    several = api.get(f"/l/{conda_lock}/Dockerfile", headers=json_only)
    assert several.status_code == 400 and "choose one" in several.json()["detail"]
    unknown = api.get(f"/l/{conda_lock}/Dockerfile?target=win-64", headers=json_only)
    assert unknown.status_code == 404 and "no target 'win-64'" in unknown.json()["detail"]
    prefix = api.get(f"/l/{conda_lock[:10]}/Dockerfile?target=linux-64")
    assert prefix.status_code == 307
    assert prefix.headers["location"] == f"/l/{conda_lock}/Dockerfile?target=linux-64"


# --- with a PyPI part, archived: every URL of the recipe answers ----------------------------


@pytest.fixture(scope="module")
def pypi_api(
    tmp_path_factory: pytest.TempPathFactory, world: PyPIWorld
) -> Iterator[InProcessClient]:
    service = InProcessService(
        tmp_path_factory.mktemp("dockerfile-service"),
        world.channels.url,
        archive="off",  # archived below, when asked
        public_url=PUBLIC_URL,
        **world.settings(),
    )
    with service.client() as http:
        yield http
    service.close()


@pytest.fixture(scope="module")
def archived_lock(pypi_api: InProcessClient, world: PyPIWorld) -> str:
    environment = world.environment("fast-thing", "-e .")
    lock_id = solve_environment(pypi_api, environment, ["linux-64"])
    assert pypi_api.post(f"/api/v1/locks/{lock_id}/archive").status_code in (200, 202)
    status = pypi_api.get(f"/api/v1/locks/{lock_id}/archive").json()
    assert status["status"] == "archived", status
    return lock_id


def test_pypi_target_recipe_installs_with_hashes_from_the_archive(
    pypi_api: InProcessClient, archived_lock: str, tmp_path: Path
) -> None:
    response = pypi_api.get(f"/l/{archived_lock}/Dockerfile")  # one target: no choice
    assert response.status_code == 200, response.text
    items = parse(response.text, tmp_path)
    # python 3.12.4 of the test channel has no pip package: bootstrapped, then used
    assert instructions(items) == ["FROM", "LABEL", "ADD", "RUN", "RUN", "RUN", "ENV"]
    _, explicit_url, _ = shlex.split(items[2]["value"])
    explicit = pypi_api.get(local(explicit_url))
    assert explicit.status_code == 200, explicit.text
    assert "@EXPLICIT" in explicit.text
    lock = pypi_api.get(f"/api/v1/locks/{archived_lock}").json()
    for package in lock["targets"]["linux-64"]["packages"]:
        assert f"#{package['md5']}" in explicit.text  # the hash micromamba checks
    assert shlex.split(items[4]["value"]) == [
        *"micromamba run -n env python -m ensurepip --default-pip".split()
    ]
    pip = shlex.split(items[5]["value"])
    assert pip[:8] == "micromamba run -n env python -m pip install".split()
    assert {"--no-deps", "--require-hashes", "--no-cache-dir"} <= set(pip)
    index = pip[pip.index("--index-url") + 1]
    assert index == f"{PUBLIC_URL}/pypi/simple/"
    assert pypi_api.get(local(index)).status_code == 200
    requirements_url = pip[pip.index("-r") + 1]
    assert requirements_url == (
        f"{PUBLIC_URL}/l/{archived_lock}/requirements/linux-64.txt?source=archive"
    )
    requirements = pypi_api.get(local(requirements_url))
    assert requirements.status_code == 200, requirements.text
    for package in lock["targets"]["linux-64"]["pypi_packages"]:
        assert f"--hash=sha256:{package['sha256']}" in requirements.text
    assert "# Not archived, install by hand: -e ." in response.text
