"""Real upstream channel data, wrapped so it can be served as a conda channel.

conda's test data keeps old snapshots of anaconda's channels as flat
``{filename: record}`` maps (``index4.json`` is ``main`` for linux-64 and noarch, about
August 2018). A channel needs one ``<subdir>/repodata.json`` per subdir, shaped
``{"info": {"subdir": ...}, "packages": {...}, "packages.conda": {...}}``; this module
writes those, so tests and benchmarks can serve the snapshot over HTTP and solve it.

Records are placed by their ``subdir`` field. The few that have none (index4.json has
12: 10 with ``platform: linux, arch: x86_64`` and 2, ``cloog`` and ``isl``, with neither)
are placed by ``noarch`` / ``platform`` + ``arch`` when those say where they belong, and
dropped otherwise, since guessing could put a package where it does not run.
:class:`WrappedChannel` reports both lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

#: Path of the anaconda `main` snapshot (linux-64 + noarch, ~2018-08) under ../shared/realdata.
INDEX4 = Path("conda+conda") / "tests" / "data" / "index4.json"

_SUBDIR_OF_PLATFORM_ARCH = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("linux", "ppc64le"): "linux-ppc64le",
    ("osx", "x86_64"): "osx-64",
    ("osx", "arm64"): "osx-arm64",
    ("win", "x86_64"): "win-64",
}


@dataclass
class WrappedChannel:
    """A flat index written out as a channel directory."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)  # subdir -> records written
    placed: dict[str, str] = field(default_factory=dict)  # filename -> subdir, by heuristic
    dropped: list[str] = field(default_factory=list)  # filenames with no knowable subdir


def subdir_of(record: dict[str, Any]) -> str | None:
    """The subdir a record belongs in: its own field, else what noarch/platform/arch say."""
    if record.get("subdir"):
        return str(record["subdir"])
    if record.get("noarch"):
        return "noarch"
    return _SUBDIR_OF_PLATFORM_ARCH.get((record.get("platform"), record.get("arch")))


def wrap_flat_index(index_file: Path, channel_dir: Path) -> WrappedChannel:
    """Write `channel_dir/<subdir>/repodata.json` for every record of a flat index.

    `.tar.bz2` records go under ``packages`` and `.conda` ones under ``packages.conda``,
    as in real repodata. ``noarch`` is always written (a channel without it is not a
    channel to conda clients), empty if the index has no noarch records.
    """
    flat: dict[str, dict[str, Any]] = json.loads(index_file.read_text())
    wrapped = WrappedChannel(channel_dir)
    by_subdir: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"noarch": {}}
    for filename, record in sorted(flat.items()):
        subdir = subdir_of(record)
        if subdir is None:
            wrapped.dropped.append(filename)
            continue
        if not record.get("subdir"):
            wrapped.placed[filename] = subdir
            record = {**record, "subdir": subdir}
        key = "packages.conda" if filename.endswith(".conda") else "packages"
        by_subdir.setdefault(subdir, {}).setdefault(key, {})[filename] = record
    for subdir, groups in by_subdir.items():
        repodata = {
            "info": {"subdir": subdir},
            "packages": groups.get("packages", {}),
            "packages.conda": groups.get("packages.conda", {}),
            "repodata_version": 1,
        }
        (channel_dir / subdir).mkdir(parents=True, exist_ok=True)
        (channel_dir / subdir / "repodata.json").write_text(json.dumps(repodata))
        wrapped.counts[subdir] = len(repodata["packages"]) + len(repodata["packages.conda"])
    return wrapped


async def reference_solve(
    channel_url: str,
    specs: list[str],
    platform: str,
    virtual_packages: list[str],
    cache_dir: Path,
    timeout: timedelta | None = None,
) -> list[Any]:
    """A bare `rattler.solve` with a fresh Gateway: what condarchive's answer must equal.

    `virtual_packages` are `name=version=build` strings, as condarchive's targets hold them.
    """
    import rattler

    packages = [
        rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
        )
        for name, version, build in (entry.split("=", 2) for entry in virtual_packages)
    ]
    return await rattler.solve(
        [channel_url.rstrip("/") + "/"],
        specs,
        gateway=rattler.Gateway(cache_dir=cache_dir),
        platforms=[platform, "noarch"],
        virtual_packages=packages,
        timeout=timeout,
    )
