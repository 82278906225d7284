"""Large real ``.conda`` packages (1 MB to 100 MB on disk) for the archive benchmark.

``tests.support.packages.build_package`` holds the whole payload in memory and
compresses it, which is fine for the test suite's few megabytes but not for 100 MB
packages built for every run. This builder streams seeded random bytes (incompressible,
like the compressed payloads real packages carry) straight to disk: the archive is as
large as its payload and is built in roughly linear time and constant memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import zipfile
from pathlib import Path

import zstandard

from tests.support.packages import PackageSpec

CHUNK = 1 << 20


def _payload(path: Path, size: int, seed: str) -> str:
    """Write `size` seeded random bytes to `path`; return their sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(CHUNK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


def build_large_package(spec: PackageSpec, channel_dir: Path) -> Path:
    """Write ``channel_dir/<subdir>/<name>-<version>-<build>.conda`` with a random payload."""
    out_dir = channel_dir / spec.subdir
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{spec.name}-{spec.version}-{spec.build}"
    payload_file = out_dir / f".{stem}.payload"
    payload_path = f"share/{spec.name}/payload.bin"
    sha256 = _payload(payload_file, spec.payload_size, stem)
    paths = {
        "paths": [
            {
                "_path": payload_path,
                "path_type": "hardlink",
                "sha256": sha256,
                "size_in_bytes": spec.payload_size,
            }
        ],
        "paths_version": 1,
    }
    info = {
        "info/index.json": json.dumps(spec.index_json(), indent=2).encode(),
        "info/paths.json": json.dumps(paths, indent=2).encode(),
        "info/about.json": json.dumps({"summary": f"benchmark payload {stem}"}).encode(),
    }
    target = out_dir / f"{stem}.conda"
    compressor = zstandard.ZstdCompressor(level=1)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        with archive.open(f"pkg-{stem}.tar.zst", "w", force_zip64=True) as member:
            with compressor.stream_writer(member, closefd=False) as zst:
                with tarfile.open(fileobj=zst, mode="w|") as tar:
                    tar.add(payload_file, arcname=payload_path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in sorted(info.items()):
                _add_bytes(tar, name, data)
        archive.writestr(f"info-{stem}.tar.zst", compressor.compress(buffer.getvalue()))
    payload_file.unlink()
    return target


#: Real package archives from ../shared/realdata (name, path) that install on linux-64.
REAL_PACKAGES = (
    ("linux-64", "conda+conda/tests/data/conda_format_repo/linux-64/zlib-1.2.11-h7b6447c_3.conda"),
    (
        "noarch",
        "mamba-org+mamba/micromamba/tests/channel_a/noarch/_r-mutex-1.0.1-anacondar_1.tar.bz2",
    ),
    (
        "noarch",
        "conda+conda-index/tests/archives/conda-forge-repodata-patches-20180828-0.tar.bz2",
    ),
)
REAL_SPECS = ("zlib", "_r-mutex", "conda-forge-repodata-patches")


def archive_channel(
    channel_dir: Path, sizes: tuple[int, ...], realdata: Path | None, prefix: str = "payload"
) -> list[str]:
    """Build and index a channel of large generated packages (plus the real ones, if given).

    Returns the specs that lock every package in it. zlib needs ``libgcc-ng``, which is
    not among the real archives, so a small generated one stands in. The payload bytes are
    seeded by the package name, so another `prefix` gives other files.
    """
    import asyncio
    import shutil

    import rattler.index

    from tests.support.packages import build_package

    specs: list[str] = []
    for size in sizes:
        name = f"{prefix}-{size >> 10}k"
        build_large_package(
            PackageSpec(name, "1.0", subdir="linux-64", payload_size=size), channel_dir
        )
        specs.append(name)
    if realdata is not None:
        for subdir, rel in REAL_PACKAGES:
            (channel_dir / subdir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(realdata / rel, channel_dir / subdir / Path(rel).name)
        build_package(PackageSpec("libgcc-ng", "8.2.0", subdir="linux-64"), channel_dir)
        specs += REAL_SPECS
    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(
        rattler.index.index_fs(channel_dir, write_zst=False, write_shards=False, force=True)
    )
    return specs
