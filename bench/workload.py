"""What the benchmark solves: channels written to a scratch directory, and the specs.

Real specs run on the anaconda ``main`` snapshot of August 2018 (index4), the ``r``
channel and the ``pytorch`` channel. The snapshot is a subset of ``main`` without
scikit-learn, so the goal's ``scikit-learn matplotlib jupyter`` cannot be solved on it;
we keep its shape (a heavy, Jupyter-sized closure) with ``matplotlib jupyter scipy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import realdata, synthetic
from bench.static_server import StaticServer


@dataclass(frozen=True)
class Case:
    """One spec against some channels, with the outcome we expect from a correct solver."""

    label: str
    channels: tuple[str, ...]  # channel names under the static server
    specs: tuple[str, ...]  # already in the form py-rattler normalises them to
    satisfiable: bool = True


OVERHEAD_CASES = (
    Case("python 3.6.* numpy scipy", ("main",), ("python 3.6.*", "numpy", "scipy")),
    Case("pandas python 3.7.*", ("main",), ("pandas", "python 3.7.*")),
    Case("matplotlib jupyter scipy", ("main",), ("jupyter", "matplotlib", "scipy")),
    Case(
        "pytorch-cpu 0.3.1 (pytorch+main)",
        ("pytorch", "main"),
        ("pytorch-cpu 0.3.1.*", "python 3.6.*"),
    ),
    Case("r-base r-tidyverse (r+main)", ("r", "main"), ("r-base", "r-tidyverse")),
    Case(
        "unsatisfiable: python 3.7 + pandas 0.20",
        ("main",),
        ("pandas 0.20.*", "python 3.7.*"),
        satisfiable=False,
    ),
)
HEAVY_REAL = OVERHEAD_CASES[2]
LIGHT_REAL = OVERHEAD_CASES[1]


@dataclass
class Workload:
    """The channels of one run, served on 127.0.0.1, and the cases that use them."""

    root: Path
    server: StaticServer
    has_realdata: bool
    synthetic: synthetic.SyntheticChannel
    notes: list[str] = field(default_factory=list)

    def urls(self, channels: tuple[str, ...]) -> list[str]:
        return [f"{self.server.url}/{name}" for name in channels]

    def synthetic_case(self) -> Case:
        return Case(
            f"synthetic {self.synthetic.records:,} records",
            (self.synthetic.path.name,),
            self.synthetic.specs,
        )

    def heavy_case(self) -> Case:
        """The heaviest real case when real data is here, else the synthetic one."""
        return HEAVY_REAL if self.has_realdata else self.synthetic_case()

    def light_case(self) -> Case:
        return LIGHT_REAL if self.has_realdata else self.synthetic_case()

    def fallback_notes(self) -> list[str]:
        """What a section that fell back to the synthetic channel should say."""
        if self.has_realdata:
            return []
        return ["runs on the synthetic channel: ../shared/realdata is absent"]

    def body(self, case: Case, targets: list[Any]) -> dict[str, Any]:
        return {
            "channels": self.urls(case.channels),
            "dependencies": list(case.specs),
            "targets": targets,
        }


def prepare(root: Path, synthetic_records: int, use_realdata: bool) -> Workload:
    """Write every channel under ``root/channels`` and start serving them."""
    channels = root / "channels"
    channels.mkdir(parents=True, exist_ok=True)
    has_realdata = use_realdata and realdata.available()
    if has_realdata:
        realdata.write_all(channels)
    syn = synthetic.write_channel(channels / "synthetic", synthetic_records)
    server = StaticServer(channels).start()
    return Workload(channels, server, has_realdata, syn)
