"""Canonical JSON and times: the one byte form every content hash (spec, request, lock) is
taken of, and the one way a time is written into anything hashed or shown.

A hash is the sha256 of ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` encoded as UTF-8 (README, "Specs, hashes and dedupe").
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def format_time(value: datetime | None) -> str | None:
    """ISO-8601 in UTC to the second (`2021-01-01T00:00:00Z`); a naive time is taken as UTC.

    Built with isoformat, not strftime("%Y"), which does not pad years before 1000 and so
    would write a time that `datetime.fromisoformat` cannot read back.
    """
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"
