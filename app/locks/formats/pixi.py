"""`pixi.lock`, written by py-rattler's own :class:`rattler.LockFile` (format v7).

Every target becomes a named lock platform (`LockPlatform(name, subdir, virtual_packages)`)
in one environment, `default`: pixi v7 lockfiles have named platforms with their virtual
packages, so `linux-64` and `linux-64-cuda12` live side by side with no loss. Records are
rebuilt from the lock's package fields (plus `constrains`, `noarch`, `timestamp`,
`license`, `track_features` when the lock dict carries them) so no network is touched.

py-rattler only writes lockfiles to a path, so the file goes through a private temporary
directory; its bytes depend only on the lock.

The PyPI part: py-rattler 0.28 adds a PyPI package with only its name, version and
location, so the file is written, each `pypi:` entry under `packages:` is given its
`sha256`, `requires_dist` and `requires_python` (and the environment its `indexes`), and
py-rattler reads it and writes it again: the bytes are py-rattler's own layout, and what
it reads back is the whole record. Local pip lines have no place in pixi.lock and are
left out (the lock's page and requirements file list them).

Reading it back: py-rattler reads the file; one target per (named) platform of one
environment, with that platform's PyPI packages.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rattler
import yaml

from app.core import safe_yaml
from app.locks.formats.base import CannotExpress, Lock, Package, pypi_packages
from app.locks.formats.entries import (
    Entry,
    LineError,
    ParsedFile,
    PyPIEntry,
    check_pypi_url,
    check_url,
    make_target,
)

MEDIA_TYPE = "application/yaml; charset=utf-8"
FORMAT = "pixi"
ENVIRONMENT = "default"


def _timestamp(value: int) -> datetime:
    """Repodata timestamps are milliseconds, except in old records where they are seconds."""
    seconds = value / 1000 if value > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, tz=UTC)


def _record(package: Package) -> rattler.RepoDataRecord:
    record = rattler.PackageRecord(
        package["name"],
        package["version"],
        rattler.BuildString.new_unchecked(package["build"]),
        int(package["build_number"]),
        package["subdir"],
        depends=list(package.get("depends") or []),
        constrains=list(package.get("constrains") or []),
        sha256=bytes.fromhex(package["sha256"]) if package.get("sha256") else None,
        md5=bytes.fromhex(package["md5"]) if package.get("md5") else None,
        size=int(package["size"]) if package.get("size") else None,
        license=package.get("license"),
    )
    noarch = package.get("noarch")
    if noarch:
        record.noarch = rattler.NoArchType("python" if noarch == "python" else "generic")
    if package.get("timestamp"):
        record.timestamp = _timestamp(int(package["timestamp"]))
    features = package.get("track_features")
    if features:
        record.track_features = features.split() if isinstance(features, str) else list(features)
    channel = package["channel"].rstrip("/") + "/"
    return rattler.RepoDataRecord(record, package["filename"], package["url"], channel)


def _platform(name: str, target: dict[str, Any]) -> rattler.LockPlatform:
    return rattler.LockPlatform(
        name,
        subdir=rattler.Subdir(target["platform"]),
        virtual_packages=list(target["virtual_packages"]),
    )


def render_pixi(lock: Lock) -> bytes:
    """The whole lock as a pixi.lock, one named platform per target."""
    names = sorted(lock["targets"])
    try:
        platforms = {name: _platform(name, lock["targets"][name]) for name in names}
        lockfile = rattler.LockFile([platforms[name] for name in names])
        channels = [url.rstrip("/") + "/" for url in lock["spec"].get("channels", [])]
        lockfile.set_channels(ENVIRONMENT, [rattler.LockChannel(url) for url in channels])
        for name in names:
            packages = sorted(
                lock["targets"][name]["packages"], key=lambda p: (p["name"], p["url"])
            )
            for package in packages:
                lockfile.add_conda_package(ENVIRONMENT, platforms[name], _record(package))
            for pypi in pypi_packages(lock["targets"][name]):
                lockfile.add_pypi_package(
                    ENVIRONMENT, platforms[name], pypi["name"], pypi["version"], pypi["url"]
                )
    except Exception as exc:  # py-rattler raises its own exception types
        raise CannotExpress(FORMAT, f"pixi.lock cannot hold this lock: {exc}") from exc
    pypi = {p["url"]: p for t in lock["targets"].values() for p in pypi_packages(t)}
    with tempfile.TemporaryDirectory(prefix="condarchive-pixi-") as tmp:
        path = Path(tmp) / "pixi.lock"
        lockfile.to_path(path)
        if pypi:
            _complete_pypi(path, pypi)
        return path.read_bytes()


def _complete_pypi(path: Path, pypi: dict[str, Package]) -> None:
    """Give each `pypi:` entry the fields py-rattler's writer takes no argument for, then
    let py-rattler read and write the file again (its own layout and key order)."""
    document = yaml.safe_load(path.read_text())
    for entry in document.get("packages") or []:
        package = pypi.get(entry.get("pypi"))
        if package is None:
            continue
        entry["sha256"] = package["sha256"]
        if package.get("requires"):
            entry["requires_dist"] = list(package["requires"])
        if package.get("requires_python"):
            entry["requires_python"] = package["requires_python"]
    indexes = list(dict.fromkeys(p["index"] for p in pypi.values() if p.get("index")))
    if indexes:
        document["environments"][ENVIRONMENT]["indexes"] = indexes
    path.write_text(yaml.safe_dump(document, sort_keys=False, width=4096))
    try:
        rattler.LockFile.from_path(path).to_path(path)
    except Exception as exc:  # py-rattler raises its own exception types
        raise CannotExpress(FORMAT, f"pixi.lock cannot hold this lock: {exc}") from exc


# --- reading ----------------------------------------------------------------------------


def _last_line_with(lines: list[str], needle: str) -> int:
    """pixi.lock lists each URL under `environments:` and then, with its hashes, under
    `packages:`; the last mention is the one with the hashes."""
    for number in range(len(lines), 0, -1):
        if needle in lines[number - 1]:
            return number
    return 0


def parse_pixi(text: str, environment: str | None = None) -> ParsedFile:
    """A pixi.lock, read by py-rattler; one target per (named) platform of one environment."""
    with tempfile.TemporaryDirectory(prefix="condarchive-import-") as tmp:
        path = Path(tmp) / "pixi.lock"
        path.write_text(text)
        try:
            lockfile = rattler.LockFile.from_path(path)
        except Exception as exc:  # py-rattler raises its own exception types
            raise LineError(0, f"py-rattler cannot read this pixi.lock: {exc}") from exc
    environments = dict(lockfile.environments())
    if environment is None:
        environment = "default" if "default" in environments or not environments else None
        if environment is None and len(environments) == 1:
            environment = next(iter(environments))
    if environment not in environments:
        raise LineError(
            0,
            f"name one environment of this pixi.lock to import: {', '.join(sorted(environments))}",
        )
    env = environments[environment]
    lines = text.splitlines()
    declared = _declared_indexes(text, environment)
    targets = []
    for platform in sorted(env.platforms(), key=lambda p: p.name):
        packages = env.packages(platform) or []
        for package in packages:
            if isinstance(package, rattler.PypiLockedPackage):
                continue
            if not isinstance(package, rattler.CondaLockedBinaryPackage):
                raise LineError(
                    _last_line_with(lines, str(package.location)),
                    f"{package.name!r} is not a conda binary package; only those can be archived",
                )
        records = env.conda_repodata_records_for_platform(platform) or []
        entries = []
        for record in records:
            url = str(record.url)
            number = _last_line_with(lines, url)
            check_url(number, url)
            entries.append(
                Entry(
                    number,
                    url,
                    record.md5.hex() if record.md5 else None,
                    record.sha256.hex() if record.sha256 else None,
                )
            )
        entries.sort(key=lambda e: e.line)
        pypi = [
            _pypi_entry(package, lines, declared[1])
            for package in env.pypi_packages_for_platform(platform) or []
        ]
        pypi.sort(key=lambda e: e.line)
        vps = list(platform.virtual_packages or [])
        targets.append(
            make_target(platform.name, str(platform.subdir), vps or None, entries, 0, pypi)
        )
    channels = tuple(str(c) for c in env.channels())
    return ParsedFile("pixi", tuple(targets), channels, declared[0])


def _declared_indexes(text: str, environment: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """The environment's `indexes`, and each `pypi:` entry's `index` (by URL): what
    py-rattler 0.28 does not expose."""
    try:
        document = safe_yaml.load(text)
    except yaml.YAMLError:
        return (), {}
    if not isinstance(document, dict):
        return (), {}
    env = (document.get("environments") or {}).get(environment)
    indexes = env.get("indexes") if isinstance(env, dict) else None
    declared = tuple(i for i in indexes or [] if isinstance(i, str))
    by_url = {
        str(e["pypi"]): e["index"]
        for e in document.get("packages") or []
        if isinstance(e, dict) and isinstance(e.get("pypi"), str)
        if isinstance(e.get("index"), str)
    }
    return declared, by_url


def _pypi_entry(
    package: rattler.PypiLockedPackage, lines: list[str], index_of: dict[str, str]
) -> PyPIEntry:
    location = str(package.location)
    url, _, fragment = location.partition("#")
    number = _last_line_with(lines, f"pypi: {location}") or _last_line_with(lines, location)
    check_pypi_url(number, url)
    hashes = package.hashes
    sha256 = hashes.sha256.hex() if hashes is not None and hashes.sha256 else None
    if sha256 is None and fragment.startswith("sha256="):
        sha256 = fragment.removeprefix("sha256=")
    return PyPIEntry(
        number,
        package.name,
        str(package.version),
        url,
        sha256,
        tuple(package.requires_dist or ()),
        package.requires_python,
        index_of.get(location),
    )
