"""The content-addressed blob store: every archived package file, named by its sha256.

Shaped like quetz's ``pkgstores``: one small abstract :class:`BlobStore` that every file
operation goes through, and a :class:`FilesystemStore` (the default, under the data
directory). A blob is written once: bytes stream into a :class:`BlobWriter` (a temp file
that hashes as it goes), and :meth:`BlobStore.put_from_tempfile` moves it into place only
after its sha256, md5 and size match what the lock recorded. A reader therefore never
sees a half-written or unverified file: it either finds the whole blob or nothing.

An S3-compatible backend would keep temp files on local disk (:meth:`temp_dir`), upload in
``put_from_tempfile`` (an S3 PUT is atomic too) and answer :meth:`url` with a presigned
URL instead of :meth:`local_path`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.archive.writeback import start_writeback

CHUNK = 1 << 20
#: Written bytes handed to the kernel's writeback this often, so the fsync before a blob
#: is renamed into place waits only for the tail (see app/archive/writeback.py).
WRITEBACK_STEP = 8 << 20


@dataclass(frozen=True)
class Expected:
    """What a file must be, from the lock's (or upstream repodata's) record.

    Old records may lack a sha256; the blob is still named by the sha256 we compute,
    and md5 + size are what is checked then.
    """

    sha256: str | None
    md5: str | None
    size: int | None


@dataclass(frozen=True)
class BlobInfo:
    """What a file is: its digests and length."""

    sha256: str
    md5: str
    size: int


class BlobMismatch(ValueError):
    """The bytes are not the ones the record names; they are never stored."""

    def __init__(self, expected: Expected, actual: BlobInfo, url: str = "") -> None:
        self.expected = expected
        self.actual = actual
        self.url = url
        wrong = [
            f"{field} expected {want} got {got}"
            for field, want, got in (
                ("sha256", expected.sha256, actual.sha256),
                ("md5", expected.md5, actual.md5),
                ("size", expected.size, actual.size),
            )
            if want is not None and want != got
        ]
        where = f"{url}: " if url else ""
        super().__init__(f"{where}hash mismatch: {'; '.join(wrong)}")


def mismatches(expected: Expected, actual: BlobInfo) -> bool:
    return (
        (expected.sha256 is not None and expected.sha256 != actual.sha256)
        or (expected.md5 is not None and expected.md5 != actual.md5)
        or (expected.size is not None and expected.size != actual.size)
    )


class BlobWriter:
    """A temp file that hashes what is written to it, so nothing is read twice.

    With `md5_from` (a record's md5, given only when the record also has a sha256), md5 is
    not computed: the sha256 check identifies the bytes, and the record's md5 is theirs.
    That is how conda and mamba verify a download (sha256 where the record has one), and
    md5 costs more than sha256 does on CPUs with SHA extensions.
    `condarchive verify` re-hashes stored blobs with both. `restart()` empties the file
    when a server ignores a Range request and sends the file from the start again.
    """

    def __init__(self, path: Path, md5_from: str | None = None) -> None:
        self.path = path
        self._file = path.open("wb")
        self.md5_from = md5_from
        self._sha256 = hashlib.sha256()
        self._md5 = None if md5_from else hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._written_back = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._sha256.update(data)
        if self._md5 is not None:
            self._md5.update(data)
        self.size += len(data)
        if self.size - self._written_back >= WRITEBACK_STEP:
            self._file.flush()
            start_writeback(self._file.fileno(), self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._sha256 = hashlib.sha256()
        if self._md5 is not None:
            self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self._written_back = 0

    def info(self) -> BlobInfo:
        md5 = self._md5.hexdigest() if self._md5 is not None else self.md5_from
        return BlobInfo(self._sha256.hexdigest(), md5 or "", self.size)

    def hashed_info(self) -> BlobInfo:
        """:meth:`info` with the md5 of the bytes on disk (for reporting a mismatch)."""
        if self._md5 is not None:
            return self.info()
        self._file.flush()
        with self.path.open("rb") as handle:
            md5 = hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False))
        return BlobInfo(self._sha256.hexdigest(), md5.hexdigest(), self.size)

    def sync(self) -> None:
        """Flush to disk: a blob renamed into place must survive a crash whole."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Whatever was not put into the store is thrown away.
        self.discard()


class BlobStore(ABC):
    """Where verified package files live, addressed by sha256."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int: ...

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """Read a blob (for re-hashing, or streaming where no local path exists)."""

    @abstractmethod
    def local_path(self, sha256: str) -> Path | None:
        """The file on local disk, so the web server can send it with sendfile and Range."""

    def url(self, sha256: str) -> str | None:
        """A URL to redirect clients to (an object store); None when served locally."""
        return None

    @abstractmethod
    def temp_dir(self) -> Path:
        """Local scratch space for downloads; on the blobs' filesystem where it matters."""

    @abstractmethod
    def put_from_tempfile(self, writer: BlobWriter, expected: Expected) -> tuple[BlobInfo, bool]:
        """Verify, then store the writer's file under its sha256.

        Returns (info, created); created is False when the blob was already stored (by
        another worker, say). Raises :class:`BlobMismatch` and stores nothing when the
        bytes differ from `expected`.
        """

    def writer(self, expected: Expected | None = None) -> BlobWriter:
        """A temp file for bytes that must match `expected`.

        Both digests are computed, always: the blobs row records what the bytes are, and
        served repodata lists those hashes, so a record's md5 is never taken on trust
        (a record may name a true sha256 beside a wrong md5, and is then refused).
        """
        directory = self.temp_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return BlobWriter(directory / f"{uuid.uuid4().hex}.part")

    def stream(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes [start, end) without holding the file in memory."""
        with self.open(sha256) as handle:
            handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def hash_blob(self, sha256: str) -> BlobInfo:
        """Re-read a stored blob and hash it (what `condarchive verify` checks)."""
        digest, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        for chunk in self.stream(sha256):
            digest.update(chunk)
            md5.update(chunk)
            size += len(chunk)
        return BlobInfo(digest.hexdigest(), md5.hexdigest(), size)

    def clean_temp(self, older_than: float) -> int:
        """Remove temp files untouched for `older_than` seconds (left by killed workers)."""
        directory = self.temp_dir()
        if not directory.is_dir():
            return 0
        cutoff, removed = time.time() - older_than, 0
        for path in directory.glob("*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemStore(BlobStore):
    """Blobs at ``<root>/sha256/ab/cd/<sha256>``; temp files in ``<root>/tmp`` (same filesystem,
    so the final rename is atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def local_path(self, sha256: str) -> Path | None:
        path = self.path(sha256)
        return path if path.is_file() else None

    def temp_dir(self) -> Path:
        return self.root / "tmp"

    def put_from_tempfile(self, writer: BlobWriter, expected: Expected) -> tuple[BlobInfo, bool]:
        info = writer.info()
        if mismatches(expected, info):
            raise BlobMismatch(expected, writer.hashed_info())
        writer.sync()
        writer.close()
        final = self.path(info.sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            # link() refuses to replace an existing blob: the first writer wins, and a
            # blob already in place is never rewritten underneath a reader.
            os.link(writer.path, final)
            created = True
        except FileExistsError:
            created = False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            # Filesystems without hard links: rename is still atomic; same bytes either way.
            created = not final.exists()
            os.replace(writer.path, final)
        writer.path.unlink(missing_ok=True)
        if created:
            _fsync_dir(final.parent)
        return info, created


def get_store() -> BlobStore:
    """The store the settings name (the filesystem store is the only backend so far)."""
    from app.config import get_settings

    return FilesystemStore(get_settings().resolved_blob_dir)
