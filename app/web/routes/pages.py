"""The index pages: recent locks and the package search, server-rendered."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import ArchiveEntry, LockArchive, LockPackage, LockPyPIPackage, LockRequest
from app.errors import InputError
from app.locks.search import Page, search_locks
from app.web.deps import SessionDep, SettingsDep
from app.web.routes.locks import MAX_OFFSET
from app.web.templating import render_page

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE_SIZE = 25


def _archive_state(counts: dict[str, int], run: str | None) -> str:
    """As app/archive/views.py's lock status: archived, queued/running/pending, failed or
    not_requested."""
    if counts["total"] and counts.get("archived", 0) == counts["total"]:
        return "archived"
    if counts.get("pending"):
        return run if run in ("queued", "running") else "pending"
    if counts.get("failed"):
        return "failed"
    return "not_requested"


def listing_facts(session: Session, items: list[dict[str, Any]]) -> None:
    """Add to each listed lock what a visitor scans for: its title (or name), packages per
    target and in all, and its archive state. A few grouped queries for the whole page."""
    ids = [item["id"] for item in items]
    if not ids:
        return
    per_target: dict[str, dict[str, int]] = {}
    for lock_id, target, count in session.execute(
        select(LockPackage.lock_id, LockPackage.target, func.count())
        .where(LockPackage.lock_id.in_(ids))
        .group_by(LockPackage.lock_id, LockPackage.target)
    ):
        per_target.setdefault(lock_id, {})[target] = count
    pypi: dict[str, dict[str, int]] = {}
    for lock_id, target, count in session.execute(
        select(LockPyPIPackage.lock_id, LockPyPIPackage.target, func.count())
        .where(LockPyPIPackage.lock_id.in_(ids))
        .group_by(LockPyPIPackage.lock_id, LockPyPIPackage.target)
    ):
        pypi.setdefault(lock_id, {})[target] = count
    states: dict[str, dict[str, int]] = {i: {"total": 0} for i in ids}
    for lock_id, state, count in session.execute(
        select(
            LockPackage.lock_id,
            ArchiveEntry.state,
            func.count(func.distinct(LockPackage.package_id)),
        )
        .outerjoin(ArchiveEntry, ArchiveEntry.package_id == LockPackage.package_id)
        .where(LockPackage.lock_id.in_(ids))
        .group_by(LockPackage.lock_id, ArchiveEntry.state)
    ):
        states[lock_id][state or "not_requested"] = count
        states[lock_id]["total"] += count
    runs = dict(
        session.execute(
            select(LockArchive.lock_id, LockArchive.status).where(LockArchive.lock_id.in_(ids))
        ).all()
    )
    titles: dict[str, str] = {}
    named: dict[str, str] = {}
    for lock_id, name, submitted in session.execute(
        select(LockRequest.lock_id, LockRequest.name, LockRequest.submitted)
        .where(LockRequest.lock_id.in_(ids))
        .order_by(LockRequest.created_at.desc(), LockRequest.id.desc())
    ):
        metadata = (submitted or {}).get("metadata") if isinstance(submitted, dict) else None
        if isinstance(metadata, dict) and metadata.get("title"):
            titles.setdefault(lock_id, metadata["title"])
        if name:
            named.setdefault(lock_id, name)
    for item in items:
        lock_id = item["id"]
        item["title"] = titles.get(lock_id) or named.get(lock_id) or item.get("name")
        item["packages"] = per_target.get(lock_id, {})
        item["pypi_packages"] = pypi.get(lock_id, {})
        item["package_count"] = states[lock_id]["total"]
        item["archive"] = _archive_state(states[lock_id], runs.get(lock_id))


@router.get("/", response_class=HTMLResponse)
@router.get("/locks", response_class=HTMLResponse)
def index(
    session: SessionDep,
    settings: SettingsDep,
    package: str | None = None,
    version: str | None = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    """Recent locks, newest first; the form searches by package and conda version spec."""
    package = (package or "").strip() or None
    version = (version or "").strip() or None
    error = None
    try:
        page = search_locks(session, package, version, PAGE_SIZE, offset)
    except InputError as exc:
        error, page = exc.msg, Page([], 0, PAGE_SIZE, offset)
    listing_facts(session, page.items)
    filters = {k: v for k, v in (("package", package), ("version", version)) if v}

    def link(at: int) -> str:
        return "/locks?" + urlencode({**filters, "offset": at})

    html = render_page(
        "index.html",
        page=page,
        base_url=settings.base_url,
        package=package,
        version=version,
        error=error,
        next_url=link(offset + PAGE_SIZE) if offset + PAGE_SIZE < page.total else None,
        prev_url=link(max(offset - PAGE_SIZE, 0)) if offset > 0 else None,
    )
    return HTMLResponse(
        html, status_code=422 if error else 200, headers={"Cache-Control": "no-cache"}
    )
