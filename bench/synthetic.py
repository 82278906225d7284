"""A synthetic conda channel at the scale of conda-forge's biggest subdirs (100,000+ records).

The real data we may use is from 2018 and small (5,600 records), so it cannot show how
the worker behaves on a channel the size users actually solve against. This generator
writes ``repodata.json`` only (solving needs no package files), shaped like a modern
conda-forge subdir:

* layers: a few hundred C libraries, then ``python`` and ``python_abi``, then compiled
  Python packages (one build per Python version), then ``noarch: python`` packages;
* names built from real-looking words (``libzephyr``, ``py-arrow``, ``tidal-forge``);
* versions with a long tail (most packages have a handful, some have dozens), build
  strings like ``py311h1a2b3c4_0`` and build numbers;
* dependency fan-out with preferential attachment (a few core libraries are depended on
  by almost everything), pinned the way run_exports pin them (``>=1.2.3,<1.3.0a0``) and
  tracking the dependency's version of the same era, so the newest set is consistent
  but older ones make the solver backtrack.

It is seeded and deterministic: the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORDS = (
    "arrow atlas aurora basil beacon birch blaze bloom bolt breeze brook cactus canyon cedar "
    "cipher cloud comet coral cosmos crane crystal delta dune echo ember falcon fern fjord "
    "flint flux forge frost galaxy garnet geode glacier granite grove harbor hazel helix "
    "heron horizon ion iris jade jasper juniper kelp kernel kite lagoon lark lattice lava "
    "ledger lichen lotus lumen lynx magma maple marble meadow mesa meteor mica mist moss "
    "nebula nectar nova oak oasis onyx opal orbit orchid otter pebble pixel plasma polar "
    "prism pulse quartz quill radar raven reef ridge river saffron sage sierra signal slate "
    "solar sparrow spruce stellar stone summit tango tempest thorn tidal timber topaz torch "
    "tundra vapor vector velvet vertex violet vortex willow wren yarrow zenith zephyr "
    "table frame array graph tensor sparse stats plot image audio video crypto parse "
    "serial stream cache queue config schema token cloud shell vault socket"
).split()
GCC_VERSIONS = ("9.3.0", "10.4.0", "11.2.0", "12.3.0", "13.2.0")
PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12")
CORE_LIBS = (
    "libgcc-ng",
    "libstdcxx-ng",
    "libzlib",
    "openssl",
    "libffi",
    "xz",
    "bzip2",
    "ncurses",
    "readline",
    "libsqlite",
    "tk",
    "libuuid",
    "ca-certificates",
    "libblas",
    "liblapack",
)
TIMESTAMP_START_MS = 1_546_300_800_000  # 2019-01-01
TIMESTAMP_SPAN_MS = 5 * 365 * 24 * 3600 * 1000


@dataclass
class Package:
    """One package name and the versions it was built at."""

    name: str
    kind: str  # "lib", "python", "python_abi", "compiled", "noarch"
    versions: list[str]
    deps: list[str] = field(default_factory=list)  # names this package depends on


@dataclass(frozen=True)
class SyntheticChannel:
    """What was written, and specs that exercise a wide part of it."""

    path: Path
    records: int
    names: int
    subdir_records: dict[str, int]
    specs: tuple[str, ...]


def _versions(rng: random.Random) -> list[str]:
    """A release history: mostly a handful of versions, sometimes dozens."""
    count = min(1 + int(rng.paretovariate(1.3)), 60)
    major, minor, patch = rng.choice((0, 0, 1, 1, 2, 3)), rng.randint(0, 12), 0
    versions = []
    for _ in range(count):
        versions.append(f"{major}.{minor}.{patch}")
        step = rng.random()
        if step < 0.6:
            patch += 1
        elif step < 0.93:
            minor, patch = minor + 1, 0
        else:
            major, minor, patch = major + 1, 0, 0
    return versions


def _names(rng: random.Random) -> Iterator[str]:
    """Unique, real-looking package names, as many as the caller takes."""
    seen: set[str] = set(CORE_LIBS) | {"python", "python_abi"}
    while True:
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        style = rng.random()
        if style < 0.25:
            name = a
        elif style < 0.55:
            name = f"{a}-{b}"
        elif style < 0.75:
            name = f"py{a}"
        elif style < 0.9:
            name = f"{a}{b}"
        else:
            name = f"{a}-{b}-{rng.choice(WORDS)}"
        if name not in seen:
            seen.add(name)
            yield name


def _with_gcc(deps: list[str]) -> list[str]:
    """Compiled code links libgcc, as every conda-forge build on linux does."""
    return ["libgcc-ng", *(d for d in deps if d != "libgcc-ng")]


def _fan_out(rng: random.Random) -> int:
    """How many other packages one package depends on: usually a few, sometimes 20+."""
    return min(int(rng.paretovariate(1.6)) + rng.randint(0, 3), 25)


def _pick_dependencies(rng: random.Random, pool: list[Package], count: int) -> list[str]:
    """Preferential attachment: earlier (more basic) packages are chosen far more often."""
    chosen: list[str] = []
    for _ in range(count):
        dep = pool[int(len(pool) * rng.random() ** 2.5)].name
        if dep not in chosen:
            chosen.append(dep)
    return chosen


def _plan(rng: random.Random, target_records: int) -> list[Package]:
    """Decide names, kinds, versions and dependency names until enough records exist."""
    plan: list[Package] = []
    for name in CORE_LIBS:
        plan.append(Package(name, "lib", _versions(rng)))
    names = _names(rng)
    for _ in range(200):
        plan.append(Package(f"lib{next(names).replace('-', '')}", "lib", _versions(rng)))
    plan[0].versions = list(GCC_VERSIONS)
    libs = list(plan)
    for i, package in enumerate(libs[1:], start=1):
        package.deps = _with_gcc(_pick_dependencies(rng, libs[:i], _fan_out(rng) // 2))
    python_versions = [f"{py}.{patch}" for py in PYTHONS for patch in range(0, 14, 3)]
    plan.append(Package("python", "python", python_versions, ["libffi", "openssl", "libzlib"]))
    plan.append(Package("python_abi", "python_abi", list(PYTHONS)))
    records = sum(_record_count(p) for p in plan)
    python_pool: list[Package] = []
    while records < target_records:
        name = next(names)
        kind = "compiled" if rng.random() < 0.45 else "noarch"
        package = Package(name, kind, _versions(rng))
        package.deps = _pick_dependencies(rng, python_pool or libs, _fan_out(rng))
        if kind == "compiled":
            package.deps = _with_gcc(package.deps + _pick_dependencies(rng, libs, 2))
        plan.append(package)
        python_pool.append(package)
        records += _record_count(package)
    return plan


def _record_count(package: Package) -> int:
    per_version = len(PYTHONS) if package.kind == "compiled" else 1
    return len(package.versions) * per_version


def _constraint(rng: random.Random, dep: Package, era: float) -> str:
    """A match spec for `dep` as a package built at `era` (0 oldest .. 1 newest) would pin it."""
    index = round(era * (len(dep.versions) - 1))
    version = dep.versions[index]
    major, minor, _ = version.split(".")
    roll = rng.random()
    if dep.name == "libgcc-ng":
        return f"{dep.name} >={version}"
    if dep.kind == "lib" and roll < 0.15:
        return f"{dep.name} >={version},<{major}.{int(minor) + 1}.0a0"
    if dep.kind == "lib" and roll < 0.6:
        return f"{dep.name} >={version},<{int(major) + 1}.0a0"
    if roll < 0.45:
        return dep.name
    if roll < 0.85:
        floor = dep.versions[rng.randint(0, index)]
        return f"{dep.name} >={floor}"
    return f"{dep.name} >={version},<{int(major) + 1}.0a0"


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def _record(
    rng: random.Random,
    package: Package,
    version: str,
    era: float,
    build: str,
    build_number: int,
    subdir: str,
    depends: list[str],
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": package.name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": depends,
        "license": rng.choice(("MIT", "BSD-3-Clause", "Apache-2.0", "GPL-3.0-or-later")),
        "md5": _hex(rng, 32),
        "sha256": _hex(rng, 64),
        "size": int(rng.lognormvariate(11.5, 1.6)),
        "subdir": subdir,
        "timestamp": TIMESTAMP_START_MS + int(era * TIMESTAMP_SPAN_MS),
    }
    if subdir == "noarch":
        record["noarch"] = "python"
    if rng.random() < 0.05:
        record["constrains"] = [f"{package.name}-extras >={version}"]
    return record


def generate(target_records: int, seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """Return ``{subdir: {filename: record}}`` with at least ``target_records`` records."""
    rng = random.Random(seed)
    plan = _plan(rng, target_records)
    by_name = {p.name: p for p in plan}
    subdirs: dict[str, dict[str, dict[str, Any]]] = {"linux-64": {}, "noarch": {}}
    for package in plan:
        for i, version in enumerate(package.versions):
            era = i / max(len(package.versions) - 1, 1)
            bn = rng.choice((0, 0, 0, 1, 2))
            deps = [_constraint(rng, by_name[d], era) for d in package.deps]
            builds: list[tuple[str, str, list[str]]] = []
            if package.kind == "lib":
                builds.append((f"h{_hex(rng, 7)}_{bn}", "linux-64", deps))
            elif package.kind == "python":
                vp = ".".join(version.split(".")[:2])
                abi = f"python_abi {vp}.* *_cp{vp.replace('.', '')}"
                builds.append((f"h{_hex(rng, 7)}_{bn}_cpython", "linux-64", [*deps, abi]))
            elif package.kind == "python_abi":
                builds.append((f"4_cp{version.replace('.', '')}", "linux-64", []))
            elif package.kind == "compiled":
                for py in PYTHONS:
                    nxt = f"3.{int(py.split('.')[1]) + 1}"
                    pins = [f"python >={py},<{nxt}.0a0", f"python_abi {py}.* *_cp{py[0]}{py[2:]}"]
                    build = f"py{py.replace('.', '')}h{_hex(rng, 7)}_{bn}"
                    builds.append((build, "linux-64", [*pins, *deps]))
            else:
                builds.append((f"pyhd8ed1ab_{bn}", "noarch", ["python >=3.8", *deps]))
            for build, subdir, depends in builds:
                ext = ".conda" if rng.random() < 0.8 else ".tar.bz2"
                filename = f"{package.name}-{version}-{build}{ext}"
                number = 4 if package.kind == "python_abi" else bn
                record = _record(rng, package, version, era, build, number, subdir, depends)
                subdirs[subdir][filename] = record
    return subdirs


def _popular(subdirs: dict[str, dict[str, dict[str, Any]]], count: int) -> list[str]:
    """Python packages with the most records that also pull in several dependencies."""
    seen: dict[str, int] = {}
    for packages in subdirs.values():
        for record in packages.values():
            if record["name"] in ("python", "python_abi") or record["name"].startswith("lib"):
                continue
            if len(record["depends"]) >= 6:
                seen[record["name"]] = seen.get(record["name"], 0) + 1
    return [name for name, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def write_channel(channel_dir: Path, target_records: int, seed: int = 0) -> SyntheticChannel:
    """Write ``linux-64`` and ``noarch`` ``repodata.json`` under ``channel_dir``."""
    subdirs = generate(target_records, seed)
    counts: dict[str, int] = {}
    for subdir, packages in subdirs.items():
        path = channel_dir / subdir / "repodata.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "info": {"subdir": subdir},
            "packages": {k: v for k, v in packages.items() if k.endswith(".tar.bz2")},
            "packages.conda": {k: v for k, v in packages.items() if k.endswith(".conda")},
            "removed": [],
            "repodata_version": 1,
        }
        path.write_text(json.dumps(body, separators=(",", ":")))
        counts[subdir] = len(packages)
    names = {r["name"] for packages in subdirs.values() for r in packages.values()}
    specs = ("python 3.11.*", *_popular(subdirs, 4))
    return SyntheticChannel(channel_dir, sum(counts.values()), len(names), counts, specs)
