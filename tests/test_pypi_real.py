"""Against the real PyPI (skipped when it cannot be reached): requests and pyyaml locked
for linux-64 and osx-arm64 get the wheels those machines install."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.inprocess import InProcessClient, InProcessService
from tests.support.pypi_world import pypi_world
from tests.support.service import wait_for_solve

pytestmark = pytest.mark.realpypi


def pypi_reachable() -> bool:
    try:
        return httpx.get("https://pypi.org/simple/pyyaml/", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def real_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessClient, str]]:
    if not pypi_reachable():
        pytest.skip("https://pypi.org cannot be reached from here")
    with pypi_world(tmp_path_factory.mktemp("real-pypi")) as world:
        # the conda side is the hermetic channel (python 3.12.4); PyPI is the real one,
        # allowed by the defaults
        service = InProcessService(tmp_path_factory.mktemp("svc"), world.channels.url)
        with service.client() as http:
            yield http, world.channel_url
        service.close()


def test_requests_and_pyyaml_from_real_pypi(real_api: tuple[InProcessClient, str]) -> None:
    http, channel = real_api
    environment = (
        f"channels:\n  - {channel}\ndependencies:\n  - python=3.12\n"
        "  - pip:\n    - requests==2.32.3\n    - pyyaml==6.0.2\n"
    )
    response = http.post(
        "/api/v1/solves", json={"environment": environment, "targets": ["linux-64", "osx-arm64"]}
    )
    assert response.status_code == 202, response.text
    job = wait_for_solve(http, response.json()["id"], timeout=300)
    assert job["status"] == "succeeded", job.get("error")
    lock = http.get(f"/api/v1/locks/{job['lock_id']}").json()
    for target, platform_tag in (("linux-64", "manylinux"), ("osx-arm64", "macosx")):
        packages = {p["name"]: p for p in lock["targets"][target]["pypi_packages"]}
        assert packages["requests"]["version"] == "2.32.3"
        assert packages["requests"]["filename"] == "requests-2.32.3-py3-none-any.whl"
        assert packages["requests"]["url"].startswith("https://files.pythonhosted.org/")
        assert {"urllib3", "idna", "certifi", "charset-normalizer"} <= set(packages)
        assert any(r.startswith("urllib3") for r in packages["requests"]["requires"])
        pyyaml = packages["pyyaml"]
        assert pyyaml["version"] == "6.0.2"
        assert pyyaml["filename"].startswith("PyYAML-6.0.2-cp312-cp312-")
        assert platform_tag in pyyaml["filename"]
        if target == "osx-arm64":
            assert pyyaml["filename"].endswith("arm64.whl")
        else:
            assert "x86_64" in pyyaml["filename"]
