"""`python -m bench --smoke` runs end to end on tiny inputs, so the benchmark does not rot.

The numbers of a smoke run mean nothing; what is checked is that every section ran (or
was skipped for a stated reason that is allowed here) and wrote its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.paths import REALDATA, ROOT
from bench.sections import SECTIONS
from tests.conftest import require_services

pytestmark = [pytest.mark.process, pytest.mark.distributed]

#: Sections that use the real channels; without ../shared/realdata they run on the
#: synthetic channel only and say so. (memory leaves its real case out of every smoke
#: run, to keep it short.)
REALDATA_SECTIONS = ("overhead", "targets", "cache", "cold", "archive", "scale")


def _allowed_skip(name: str, reason: str) -> bool:
    return not REALDATA.is_dir() and "realdata" in reason


def test_bench_smoke(tmp_path: Path) -> None:
    require_services()
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-6000:]}"
    results = json.loads(output.read_text())
    assert results["smoke"] is True
    assert results["realdata"] == REALDATA.is_dir()
    assert set(results["sections"]) == set(SECTIONS)
    for name, section in results["sections"].items():
        if section["status"] == "skipped":
            assert _allowed_skip(name, section["reason"]), (name, section["reason"])
            continue
        assert section["status"] == "ok", (name, section["reason"])
        assert section["figures"], name
        for figure in section["figures"]:
            assert isinstance(figure["value"], float | int) and figure["value"] > 0, figure
            assert figure["verdict"] in ("pass", "miss", "info"), figure
        if not REALDATA.is_dir() and name in REALDATA_SECTIONS:
            assert any("realdata is absent" in note for note in section["notes"]), section
    for line in ("1. Solve overhead", "7. Scale"):
        assert line in done.stdout
    # The floor under figure 1 (bench/floor.py), measured beside the cases:
    labels = [f["label"] for f in results["sections"]["overhead"]["figures"]]
    assert any(label.startswith("floor in all") for label in labels), labels
    if results["sections"]["archive"]["status"] == "ok":
        archive = [f["label"] for f in results["sections"]["archive"]["figures"]]
        assert any("1 MiB at a time" in label for label in archive), archive
        assert any("small packages" in label for label in archive), archive


def test_bench_profile_steps_times_each_step_of_the_task_body() -> None:
    """`python -m bench.profile steps` wraps the worker's steps by name: it must follow
    the code it times (bench/README.md's table of the solve overhead comes from it)."""
    require_services()
    done = subprocess.run(
        [sys.executable, "-m", "bench.profile", "steps", "--jobs", "2", "--case", "synthetic"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-6000:]}"
    for step in ("claim", "rattler.solve", "records converted", "store_lock", "succeed"):
        assert step in done.stdout, done.stdout
    assert "whole task body" in done.stdout
