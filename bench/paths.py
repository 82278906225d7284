"""Where the benchmark finds the project and the shared real data."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REALDATA = ROOT.parent / "shared" / "realdata"
RESULTS = BENCH / "results.json"
