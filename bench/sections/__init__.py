"""The seven figures of the benchmark, one module each, in the order its goals list them."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Context
from bench.figures import SectionResult
from bench.sections import archive, cache, cold, memory, overhead, scale, targets

Section = Callable[[Context, SectionResult], None]

#: name -> (title, function). The names are what `--only` / `--skip` take.
SECTIONS: dict[str, tuple[str, Section]] = {
    "overhead": ("1. Solve overhead: POST to succeeded vs bare rattler.solve", overhead.run),
    "targets": ("2. Targets in parallel: four targets vs one", targets.run),
    "cache": ("3. Cache hit: identical POST and lock GET", cache.run),
    "cold": ("4. Cold repodata: first solve vs downloading the repodata", cold.run),
    "archive": ("5. Archive throughput vs plain concurrent download", archive.run),
    "memory": ("6. Worker peak RSS on the largest channels", memory.run),
    "scale": ("7. Scale: jobs/s through the queue, one and two workers", scale.run),
}
