"""What every section is handed: the run's sizes, channels, the running stack, the bare solver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bare import BareSolver
from bench.config import Config
from bench.stack import JobTiming, Stack
from bench.workload import Case, Workload

#: Settings for the solve stack: repodata stays warm for the whole run, and locks are not
#: archived as they are made (archiving is measured on its own, in the archive section).
SOLVE_SETTINGS = {"repodata_ttl": "86400", "archive": "off", "archive_concurrency": "4"}


@dataclass
class Context:
    config: Config
    workload: Workload
    stack: Stack
    bare: BareSolver
    workdir: Path

    def solve(self, case: Case, targets: list[Any]) -> JobTiming:
        """Solve `case` through the service; fail if it did not end as the case expects."""
        body = self.workload.body(case, targets)
        job = self.stack.solve(body, self.config.job_timeout)
        return job.expect(case.satisfiable, case.label)
