"""Shared route dependencies, as annotated types (the FastAPI full-stack template's style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.session import get_session

# scope="function": the session commits and closes when the route returns, before the
# response is sent, so a failed commit is answered (503 when the database is down)
# instead of being raised after a 200 went out.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def current_settings() -> Settings:
    """The settings, without a trip through the thread pool (a sync dependency takes one)."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(current_settings)]
