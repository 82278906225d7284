"""Read locks by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from app.api.deps import SessionDep
from app.locks import find_lock, lock_view
from app.schemas import LockView

router = APIRouter(prefix="/api/v1/locks", tags=["locks"])


@router.get("/{lock_id}", response_model=LockView)
def get_lock(lock_id: str, session: SessionDep) -> dict[str, Any]:
    lock = find_lock(session, lock_id)
    if lock is None:
        raise HTTPException(status_code=404, detail=f"no lock with id {lock_id!r}")
    return lock_view(session, lock)
