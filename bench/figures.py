"""What a section reports: figures with their goal and verdict, or why it was skipped.

A figure compares the service with a baseline measured in the same run (so the ratio
holds on a noisy machine) and, where a goal is set, says whether it was met.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, MISS, INFO = "pass", "miss", "info"
_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    """A goal's bound, e.g. ``Goal("<=", 1.3, "x bare")``."""

    op: str
    bound: float
    unit: str = ""

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        symbol = {"<=": "≤", ">=": "≥"}[self.op]
        gap = "" if self.unit.startswith("×") else " "
        return f"{symbol} {self.bound:g}{gap}{self.unit}".rstrip()


@dataclass
class Figure:
    """One row of the table: what the service did, against what, and the verdict."""

    label: str
    measured: str  # the service, formatted
    baseline: str  # the side-by-side reference, formatted ("" if none)
    value: float  # the number the goal is checked against
    unit: str = ""
    goal: Goal | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return INFO
        return PASS if self.goal.met(self.value) else MISS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["goal"] = str(self.goal) if self.goal else None
        data["verdict"] = self.verdict
        return data


@dataclass
class SectionResult:
    """A section's figures, or the reason it did not run (``skipped``) or broke (``error``)."""

    name: str
    title: str
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "load_average": list(self.load),
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
        }


class Skip(Exception):
    """Raised by a section that cannot run here; the message is the reason shown."""
