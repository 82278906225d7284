"""The index pages: recent locks and the package search, server-rendered."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from app.errors import InputError
from app.locks.search import Page, search_locks
from app.web.deps import SessionDep
from app.web.routes.locks import MAX_OFFSET
from app.web.templating import render_page

router = APIRouter(tags=["pages"], include_in_schema=False)

PAGE_SIZE = 25


@router.get("/", response_class=HTMLResponse)
@router.get("/locks", response_class=HTMLResponse)
def index(
    session: SessionDep,
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
    filters = {k: v for k, v in (("package", package), ("version", version)) if v}

    def link(at: int) -> str:
        return "/locks?" + urlencode({**filters, "offset": at})

    html = render_page(
        "index.html",
        page=page,
        package=package,
        version=version,
        error=error,
        next_url=link(offset + PAGE_SIZE) if offset + PAGE_SIZE < page.total else None,
        prev_url=link(max(offset - PAGE_SIZE, 0)) if offset > 0 else None,
    )
    return HTMLResponse(
        html, status_code=422 if error else 200, headers={"Cache-Control": "no-cache"}
    )
