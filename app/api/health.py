"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import get_session

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health")
def health(
    session: Session = Depends(get_session), settings: Settings = Depends(get_settings)
) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok", "mode": "embedded" if settings.embedded else "distributed"}
