"""How many bytes one lock may put in the archive (``CONDARCHIVE_MAX_ARCHIVE_BYTES_PER_LOCK``)."""

from __future__ import annotations

from app.config import Settings
from app.errors import LimitError, setting_name


def check_archive_size(total: int, settings: Settings) -> None:
    """LimitError (a 422) when a lock's packages add up to more than one lock may archive."""
    limit = settings.max_archive_bytes_per_lock
    if total > limit:
        raise LimitError(
            ["path", "lock_id"],
            f"the lock's packages are {total} bytes; the limit for archiving one lock is "
            f"{limit} bytes ({setting_name('max_archive_bytes_per_lock')})",
            "max_archive_bytes_per_lock",
            limit,
        )
