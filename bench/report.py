"""The table people read and the JSON tools read, from the same section results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.figures import SectionResult

HEADER = ("figure", "service", "baseline", "value", "goal", "verdict")


def _value(value: float, unit: str) -> str:
    if unit in ("MB", "req/s", "jobs/s"):
        return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f}{unit if unit.startswith('×') else ' ' + unit}"


def rows(results: list[SectionResult]) -> list[tuple[str, ...]]:
    """One row per figure, a section heading before each section's figures."""
    table: list[tuple[str, ...]] = []
    for section in results:
        status = "" if section.status == "ok" else f" [{section.status}: {section.reason}]"
        status += f" (load {section.load[0]:.1f})"
        table.append((f"{section.title}{status}", "", "", "", "", ""))
        for fig in section.figures:
            table.append(
                (
                    "  " + fig.label,
                    fig.measured,
                    fig.baseline,
                    _value(fig.value, fig.unit),
                    str(fig.goal) if fig.goal else "—",
                    fig.verdict if fig.goal else "—",
                )
            )
    return table


def render_text(results: list[SectionResult], machine: str) -> str:
    table = [HEADER, *rows(results)]
    widths = [max(len(r[i]) for r in table if r[1] or i == 0) for i in range(len(HEADER))]
    lines = [f"machine: {machine}", ""]
    for row in table:
        if not row[1] and row is not HEADER:
            lines.append(row[0])
            continue
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(lines)


def render_markdown(results: list[SectionResult], machine: str) -> str:
    lines = [
        f"Machine: {machine}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    for row in rows(results):
        if not row[1]:
            lines.append(f"| **{row[0]}** |  |  |  |  |  |")
        else:
            lines.append("| " + " | ".join([row[0].strip(), *row[1:]]) + " |")
    return "\n".join(lines)


def write_json(path: Path, results: list[SectionResult], meta: dict[str, Any]) -> None:
    body = {**meta, "sections": {r.name: r.to_json() for r in results}}
    path.write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")
