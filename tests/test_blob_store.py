"""Which hashes the blob store checks: sha256 where the record has one, md5 where it has not.

The archive tests drive this through real downloads; these pin the rule itself, including
old records that carry only an md5, which the test channels do not produce.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from app.archive import blobs as storage
from app.archive import writeback
from app.archive.blobs import BlobInfo, BlobMismatch, Expected, FilesystemStore

DATA = b"conda package bytes " * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


def store_bytes(store: FilesystemStore, data: bytes, expected: Expected) -> tuple[BlobInfo, bool]:
    with store.writer(expected) as writer:
        writer.write(data)
        return store.put_from_tempfile(writer, expected)


def test_a_record_with_sha256_is_checked_by_it_and_keeps_its_md5(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    info, created = store_bytes(store, DATA, Expected(SHA256, MD5, len(DATA)))
    assert created and (info.sha256, info.md5, info.size) == (SHA256, MD5, len(DATA))
    assert store.hash_blob(SHA256) == info  # what `condarchive verify` recomputes


def test_a_sha256_mismatch_reports_both_hashes_of_the_bytes_received(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    bad = DATA[:-1] + b"!"
    with pytest.raises(BlobMismatch) as refused:
        store_bytes(store, bad, Expected(SHA256, MD5, len(DATA)))
    message = str(refused.value)
    assert f"sha256 expected {SHA256} got {hashlib.sha256(bad).hexdigest()}" in message
    assert f"md5 expected {MD5} got {hashlib.md5(bad).hexdigest()}" in message
    assert not store.exists(SHA256) and not list((tmp_path / "tmp").glob("*.part"))


def test_a_record_with_only_md5_is_checked_by_md5(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with pytest.raises(BlobMismatch, match="md5 expected"):
        store_bytes(store, DATA, Expected(None, "0" * 32, len(DATA)))
    info, created = store_bytes(store, DATA, Expected(None, MD5, len(DATA)))
    assert created and (info.sha256, info.md5) == (SHA256, MD5)  # named by its sha256
    assert store.exists(SHA256)


def test_a_large_blob_has_its_writeback_started_as_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsync before a blob is renamed into place then waits only for the tail."""
    started: list[tuple[int, int]] = []

    def record(fd: int, offset: int, length: int) -> None:
        started.append((offset, length))
        writeback.start_writeback(fd, offset, length)  # the real call, on the real file

    monkeypatch.setattr(storage, "start_writeback", record)
    chunk = bytes(range(256)) * 4096  # 1 MiB
    data = chunk * 20
    expected = Expected(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), len(data))
    store = FilesystemStore(tmp_path)
    with store.writer(expected) as writer:
        for start in range(0, len(data), len(chunk)):
            writer.write(data[start : start + len(chunk)])
        info, created = store.put_from_tempfile(writer, expected)
    step = storage.WRITEBACK_STEP
    assert started == [(0, step), (step, step)]  # 16 of 20 MiB queued before the fsync
    assert created and store.hash_blob(info.sha256) == info


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux-only")
def test_writeback_uses_the_kernel_call_on_linux(tmp_path: Path) -> None:
    assert writeback._start is not None  # bound to libc, not the no-op fallback
    path = tmp_path / "f"
    with path.open("wb") as handle:
        handle.write(DATA)
        handle.flush()
        writeback.start_writeback(handle.fileno(), 0, len(DATA))
    assert path.read_bytes() == DATA
