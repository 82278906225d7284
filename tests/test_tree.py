"""Why is this package here: `GET /api/v1/locks/{id}/tree` (what each package requires,
what requires it, which requested spec pulled it in) and `condarchive tree`, which prints
it as `pixi tree` does, run as a user runs it: a subprocess against a running service."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from app.locks.tree import dependency_tree, render_inverted, render_tree
from tests.support.inprocess import InProcessClient
from tests.support.pypi_world import PyPIWorld
from tests.support.service import ROOT, Service
from tests.support.solving import solve_environment, solve_lock

DEPENDENCIES = ["numlib<1.26", "timely"]


def tree_of(api: Any, lock_id: str, target: str | None = "linux-64") -> dict[str, Any]:
    query = f"?target={target}" if target else ""
    response = api.get(f"/api/v1/locks/{lock_id}/tree{query}")
    assert response.status_code == 200, response.text
    return response.json()


def by_name(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in tree["packages"]}


def requested_specs(api: Any, lock_id: str) -> list[str]:
    requests = api.get(f"/api/v1/locks/{lock_id}/requests").json()["items"]
    return [spec for r in requests for spec in r["spec"]["dependencies"]]


@pytest.fixture(scope="module")
def conda_lock(api: InProcessClient, channel_url: str) -> str:
    return solve_lock(api, channel_url, DEPENDENCIES, ["linux-64", "osx-arm64"])


def test_tree_api_has_requires_required_by_and_requested_by(
    api: InProcessClient, conda_lock: str
) -> None:
    tree = tree_of(api, conda_lock)
    assert tree["lock_id"] == conda_lock and tree["target"] == "linux-64"
    numlib_spec, timely_spec = sorted(requested_specs(api, conda_lock))
    assert numlib_spec.startswith("numlib") and timely_spec == "timely"
    packages = by_name(tree)
    assert set(packages) == {"numlib", "libfoo", "timely"}
    assert packages["numlib"]["requires"] == ["conda:libfoo"]
    assert packages["libfoo"]["required_by"] == ["conda:numlib"]
    assert packages["libfoo"]["requires"] == packages["timely"]["required_by"] == []
    assert packages["libfoo"]["requested_by"] == [numlib_spec]
    assert packages["timely"]["requested_by"] == [timely_spec]
    assert tree["roots"] == [
        {"spec": numlib_spec, "source": "conda", "package": "conda:numlib", "requested": True},
        {"spec": timely_spec, "source": "conda", "package": "conda:timely", "requested": True},
    ]
    # the same answer for a prefix; several targets need a choice; unknown ones are named
    assert tree_of(api, conda_lock[:12]) == tree
    several = api.get(f"/api/v1/locks/{conda_lock}/tree")
    assert several.status_code == 400 and "linux-64, osx-arm64" in several.json()["detail"]
    unknown = api.get(f"/api/v1/locks/{conda_lock}/tree?target=win-64")
    assert unknown.status_code == 404 and "no target 'win-64'" in unknown.json()["detail"]
    assert api.get(f"/api/v1/locks/{'0' * 64}/tree").status_code == 404


# --- PyPI requirements are edges too, to conda packages that provide them ------------------


def test_pypi_edges_and_a_repeated_subtree(pypi_api: InProcessClient, world: PyPIWorld) -> None:
    environment = world.environment(
        "fast-thing", "uses-msgpack==1.0", conda=("python=3.12", "msgpack-python")
    )
    lock_id = solve_environment(pypi_api, environment, ["linux-64"])
    tree = tree_of(pypi_api, lock_id, None)  # one target: no choice needed
    packages = by_name(tree)
    assert packages["fast-thing"]["requires"] == ["pypi:pure-dep"]
    assert packages["pure-dep"]["requested_by"] == ["pip: fast-thing"]
    # msgpack is conda's msgpack-python: uses-msgpack's requirement is an edge to it
    assert packages["uses-msgpack"]["requires"] == ["conda:msgpack-python"]
    assert packages["msgpack-python"]["required_by"] == ["pypi:uses-msgpack"]
    python_spec = next(s for s in requested_specs(pypi_api, lock_id) if s.startswith("python"))
    assert packages["python"]["requested_by"] == sorted(
        ["msgpack-python", python_spec, "pip: uses-msgpack==1.0"]
    )
    v = {name: p["version"] for name, p in packages.items()}
    assert render_tree(tree).splitlines() == [
        f"├── msgpack-python {v['msgpack-python']}",
        f"│   └── python {v['python']}",
        f"├── python {v['python']}",
        "├── fast-thing 1.0 (pypi)",
        "│   └── pure-dep 2.0 (pypi)",
        "└── uses-msgpack 1.0 (pypi)",
        f"    └── msgpack-python {v['msgpack-python']} (*)",
    ]
    assert render_inverted(tree, "python").splitlines() == [
        f"python {v['python']} [requested: {python_spec}]"
        f" (pulled in by: msgpack-python, pip: uses-msgpack==1.0)",
        f"└── msgpack-python {v['msgpack-python']} [requested: msgpack-python]",
        "    └── uses-msgpack 1.0 (pypi) [requested: pip: uses-msgpack==1.0]",
    ]


def test_a_lock_without_recorded_specs_hangs_from_its_top_packages() -> None:
    def conda(name: str, *depends: str) -> dict[str, Any]:
        return {"name": name, "version": "1", "depends": list(depends)}

    lock = {
        "targets": {
            "t": {
                "platform": "linux-64",
                "packages": [
                    conda("app", "lib >=1", "__glibc >=2.17"),
                    conda("lib", "base"),
                    conda("base"),
                    conda("tool", "base"),
                    conda("ping", "pong"),  # a cycle nothing else requires
                    conda("pong", "ping"),
                ],
                "pypi_packages": [],
            }
        }
    }
    tree = dependency_tree(lock, "t").view()
    assert [(r["package"], r["requested"]) for r in tree["roots"]] == [
        ("conda:app", False),
        ("conda:tool", False),
        ("conda:ping", False),
    ]
    assert render_tree(tree).splitlines() == [
        "├── app 1",
        "│   └── lib 1",
        "│       └── base 1",
        "├── tool 1",
        "│   └── base 1",
        "└── ping 1",
        "    └── pong 1",
        "        └── ping 1 (*)",
    ]
    assert render_inverted(tree, "base").splitlines() == [
        "base 1",
        "├── lib 1",
        "│   └── app 1",
        "└── tool 1",
    ]


# --- the CLI, as a subprocess against a running service ------------------------------------


@pytest.fixture(scope="module")
def served_lock(embedded: Service, channel_url: str) -> str:
    with httpx.Client(base_url=embedded.url, timeout=60) as http:
        return solve_lock(http, channel_url, DEPENDENCIES, ["linux-64", "osx-arm64"])


def condarchive(embedded: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDARCHIVE_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--server", embedded.url],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.process
def test_cli_tree_and_invert(embedded: Service, served_lock: str) -> None:
    with httpx.Client(base_url=embedded.url, timeout=60) as http:
        tree = tree_of(http, served_lock)
    v = {p["name"]: p["version"] for p in tree["packages"]}
    numlib_spec = tree["roots"][0]["spec"]

    result = condarchive(embedded, "tree", served_lock[:10], "--target", "linux-64")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"├── numlib {v['numlib']}",
        f"│   └── libfoo {v['libfoo']}",
        f"└── timely {v['timely']}",
    ]
    why = condarchive(embedded, "tree", served_lock, "-t", "linux-64", "--invert", "libfoo")
    assert why.returncode == 0, why.stderr
    assert why.stdout.splitlines() == [
        f"libfoo {v['libfoo']} (pulled in by: {numlib_spec})",
        f"└── numlib {v['numlib']} [requested: {numlib_spec}]",
    ]
    as_json = condarchive(embedded, "tree", served_lock, "-t", "osx-arm64", "--json")
    assert as_json.returncode == 0 and '"target": "osx-arm64"' in as_json.stdout


@pytest.mark.process
def test_cli_tree_errors(embedded: Service, served_lock: str) -> None:
    several = condarchive(embedded, "tree", served_lock)
    assert several.returncode == 2 and "linux-64, osx-arm64" in several.stderr
    unknown = condarchive(embedded, "tree", "0" * 64)
    assert unknown.returncode == 2 and "no lock" in unknown.stderr
    missing = condarchive(embedded, "tree", served_lock, "-t", "linux-64", "-i", "nothing")
    assert missing.returncode == 2 and "has no package 'nothing'" in missing.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "app.cli", "tree", served_lock, "--server", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
