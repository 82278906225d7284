"""Turning what a user typed (a full lock id or a prefix of one) into a lock.

A prefix of 8 or more hex characters is enough to find a lock, so short links work; it
is never enough to *name* one, since a later lock can share it. Routes therefore
redirect prefixes to the full id, temporarily. An id (or prefix) a lock had under an earlier
canonical form finds the lock it became (``lock_aliases``, migration 0004), and redirects too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Lock, LockAlias
from app.locks.store import find_lock

MIN_PREFIX = 8
FULL_LENGTH = 64
_HEX = re.compile(r"^[0-9a-f]+$")
MAX_CANDIDATES = 20


@dataclass(frozen=True)
class Resolution:
    """`lock` when the reference names exactly one; `candidates` when it is ambiguous."""

    ref: str
    lock: Lock | None = None
    candidates: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.lock is not None and self.lock.id == self.ref

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


def is_lock_ref(ref: str) -> bool:
    return MIN_PREFIX <= len(ref) <= FULL_LENGTH and bool(_HEX.match(ref))


def resolve(session: Session, ref: str) -> Resolution:
    """Look `ref` up; an unknown or malformed ref gives a Resolution with neither field set."""
    ref = ref.strip().lower()
    if not is_lock_ref(ref):
        return Resolution(ref)
    if len(ref) == FULL_LENGTH:
        return Resolution(ref, lock=find_lock(session, ref))
    ids = list(
        session.scalars(
            select(Lock.id)
            .where(Lock.id.startswith(ref, autoescape=True))
            .order_by(Lock.id)
            .limit(MAX_CANDIDATES + 1)
        )
    )
    if not ids:  # a prefix of an id from an earlier canonical form
        ids = list(
            session.scalars(
                select(LockAlias.new_id)
                .where(LockAlias.old_id.startswith(ref, autoescape=True))
                .order_by(LockAlias.new_id)
                .distinct()
                .limit(MAX_CANDIDATES + 1)
            )
        )
    if len(ids) == 1:
        return Resolution(ref, lock=session.get(Lock, ids[0]))
    return Resolution(ref, candidates=ids)
