"""`pixi.lock`, written by py-rattler's own :class:`rattler.LockFile` (format v7).

Every target becomes a named lock platform (`LockPlatform(name, subdir, virtual_packages)`)
in one environment, `default`: pixi v7 lockfiles have named platforms with their virtual
packages, so `linux-64` and `linux-64-cuda12` live side by side with no loss. Records are
rebuilt from the lock's package fields (plus `constrains`, `noarch`, `timestamp`,
`license`, `track_features` when the lock dict carries them) so no network is touched.

py-rattler only writes lockfiles to a path, so the file goes through a private temporary
directory; its bytes depend only on the lock.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rattler

from app.lockfiles.base import CannotExpress, Lock, Package

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
    except Exception as exc:  # py-rattler raises its own exception types
        raise CannotExpress(FORMAT, f"pixi.lock cannot hold this lock: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="condarchive-pixi-") as tmp:
        path = Path(tmp) / "pixi.lock"
        lockfile.to_path(path)
        return path.read_bytes()
