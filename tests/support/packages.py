"""Build real conda package archives (`.conda` and `.tar.bz2`) for test channels.

The archives carry a real `info/index.json`, `info/paths.json` and one payload
file, so py-rattler can index, solve and install them like any upstream package.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import random
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard


@dataclass
class PackageSpec:
    """What one package build declares in its `info/index.json`."""

    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    subdir: str = "noarch"
    depends: list[str] = field(default_factory=list)
    constrains: list[str] = field(default_factory=list)
    track_features: str = ""
    timestamp_ms: int | None = None
    fmt: str = ".conda"  # or ".tar.bz2"
    payload_size: int = 0  # extra bytes of incompressible payload
    # Extra files: listed in info/paths.json under these paths, and stored as tar members of
    # the same names (a hostile package may list `../x`; extraction drops such members).
    extra_paths: dict[str, bytes] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}{self.fmt}"

    def index_json(self) -> dict:
        arch, platform = _arch_platform(self.subdir)
        record: dict = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": self.depends,
            "constrains": self.constrains,
            "subdir": self.subdir,
            "arch": arch,
            "platform": platform,
            "license": "BSD-3-Clause",
            "timestamp": self.timestamp_ms or int(time.time() * 1000),
        }
        if self.subdir == "noarch":
            record["noarch"] = "generic"
        if self.track_features:
            record["track_features"] = self.track_features
        return record


def _arch_platform(subdir: str) -> tuple[str | None, str | None]:
    if subdir == "noarch":
        return None, None
    platform, _, arch = subdir.partition("-")
    arch = {"64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(arch, arch)
    return arch, platform


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _members(spec: PackageSpec) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Return (info members, payload members) of the archive."""
    payload_path = f"share/{spec.name}/{spec.name}-{spec.version}-{spec.build}.txt"
    payload = f"{spec.name} {spec.version} {spec.build}\n".encode()
    if spec.payload_size:
        # Seeded random bytes: the same for the same filename, and zstd cannot shrink
        # them, so the archive really is about payload_size (downloads take time).
        payload += random.Random(spec.filename).randbytes(spec.payload_size)
    paths_json = {
        "paths": [
            {
                "_path": payload_path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(payload).hexdigest(),
                "size_in_bytes": len(payload),
            }
        ],
        "paths_version": 1,
    }
    for path, data in spec.extra_paths.items():
        paths_json["paths"].append(
            {
                "_path": path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
        )
    info = {
        "info/index.json": json.dumps(spec.index_json(), indent=2).encode(),
        "info/paths.json": json.dumps(paths_json, indent=2).encode(),
        "info/about.json": json.dumps({"summary": f"test package {spec.name}"}).encode(),
    }
    return info, {payload_path: payload, **spec.extra_paths}


def build_package(spec: PackageSpec, channel_dir: Path) -> Path:
    """Write the archive for `spec` into `channel_dir/<subdir>/` and return its path."""
    target_dir = channel_dir / spec.subdir
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / spec.filename
    info, payload = _members(spec)
    if spec.fmt == ".tar.bz2":
        path.write_bytes(bz2.compress(_tar_bytes({**info, **payload})))
    elif spec.fmt == ".conda":
        stem = spec.filename[: -len(".conda")]
        compressor = zstandard.ZstdCompressor(level=3)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
            archive.writestr(f"pkg-{stem}.tar.zst", compressor.compress(_tar_bytes(payload)))
            archive.writestr(f"info-{stem}.tar.zst", compressor.compress(_tar_bytes(info)))
    else:
        raise ValueError(f"unknown package format {spec.fmt!r}")
    return path


def build_channel(channel_dir: Path, specs: list[PackageSpec], *, shards: bool = True) -> Path:
    """Build every package, then index the channel with py-rattler (repodata.json, .zst, shards)."""
    import rattler.index

    channel_dir.mkdir(parents=True, exist_ok=True)
    (channel_dir / "noarch").mkdir(exist_ok=True)
    for spec in specs:
        build_package(spec, channel_dir)
    asyncio.run(
        rattler.index.index_fs(channel_dir, write_zst=True, write_shards=shards, force=True)
    )
    return channel_dir


def backdate_index(channel_dir: Path) -> Path:
    """Make each record of an indexed channel say it entered the channel when it was built.

    rattler's indexer stamps every record's `indexed_timestamp` with the time it runs, and
    py-rattler's `exclude_newer` rightly prefers that to the build `timestamp` (it is when
    the package appeared in the channel). A channel built by the tests therefore looks as
    if all of it appeared today. This sets `indexed_timestamp = timestamp` in each
    repodata.json and re-indexes incrementally, which keeps the edited records and
    rewrites repodata.json.zst and the shards from them, so the channel looks as if it had
    existed for as long as its packages.
    """
    import rattler.index

    for repodata_path in channel_dir.glob("*/repodata.json"):
        repodata = json.loads(repodata_path.read_text())
        for key in ("packages", "packages.conda"):
            for record in repodata.get(key, {}).values():
                if record.get("timestamp"):
                    record["indexed_timestamp"] = record["timestamp"]
        repodata_path.write_text(json.dumps(repodata, indent=2, sort_keys=True))
    asyncio.run(rattler.index.index_fs(channel_dir, write_zst=True, write_shards=True))
    return channel_dir
