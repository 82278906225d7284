"""A channel whose solve cannot finish in time: the pigeonhole principle as repodata.

`pigeon<i>` (one per pigeon) has one version per hole, and version `h` requires
`hole<h> ==<i>`. A package has only one version installed, so every hole holds at most
one pigeon; with one pigeon more than holes the request is unsatisfiable, and proving
that takes a resolution-based (CDCL) solver such as resolvo exponential time. With 14
holes py-rattler runs for well over a minute (measured: still running at 20 s, where 10
holes take 0.5 s), so a solve timeout of a second or two is hit every time, on any
machine, while fetching the tiny repodata takes milliseconds.

Only repodata is written: no solve of this channel ever succeeds, so no package file is
ever fetched.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_pigeonhole_channel(channel_dir: Path, holes: int = 14) -> list[str]:
    """Write `noarch/repodata.json` for `holes + 1` pigeons; return the specs to request."""
    packages: dict[str, dict[str, object]] = {}

    def add(name: str, version: int, depends: list[str]) -> None:
        packages[f"{name}-{version}-0.tar.bz2"] = {
            "name": name,
            "version": str(version),
            "build": "0",
            "build_number": 0,
            "depends": depends,
            "subdir": "noarch",
            "md5": "0" * 32,
            "sha256": "0" * 64,
            "size": 1,
            "timestamp": 1_700_000_000_000,
        }

    pigeons = range(1, holes + 2)
    for pigeon in pigeons:
        for hole in range(1, holes + 1):
            add(f"pigeon{pigeon}", hole, [f"hole{hole} =={pigeon}"])
    for hole in range(1, holes + 1):
        for pigeon in pigeons:
            add(f"hole{hole}", pigeon, [])
    noarch = channel_dir / "noarch"
    noarch.mkdir(parents=True, exist_ok=True)
    repodata = {"info": {"subdir": "noarch"}, "packages": packages, "packages.conda": {}}
    (noarch / "repodata.json").write_text(json.dumps(repodata))
    return [f"pigeon{pigeon}" for pigeon in pigeons]
