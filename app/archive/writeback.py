"""Start the kernel writing a file's dirty pages early, without waiting for it.

A blob is fsynced before it is renamed into the store. Left alone, the kernel holds a
large download's pages in memory and the fsync then waits for all of them at once,
after the last byte arrived. ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` queues the
writeback of what is already written while the rest downloads, so the final fsync only
waits for the tail. It is Linux-only and has no Python binding, hence ctypes; elsewhere
this is a no-op and the fsync does all the work, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        # A failure here only means the fsync has more to do; it reports real errors.
        function(fd, offset, length, SYNC_FILE_RANGE_WRITE)

    return start


_start = _load()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue `length` bytes from `offset` of `fd` for writing to disk; returns at once."""
    if _start is not None and length > 0:
        _start(fd, offset, length)
