"""From what a user typed after `/l/` to a lock, or to the page that answers instead.

A full id names a lock; a unique prefix redirects to the full id (307, not cached: a later
lock may share the prefix); an ambiguous prefix answers 300 with the candidates; anything
else a 404. These answers are small pages, or JSON for clients that ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.orm import Session

from app.db.models import Lock
from app.locks.refs import resolve
from app.web.negotiation import prefers_json
from app.web.templating import render_page

NOT_CACHED = {"Cache-Control": "no-store"}


def message(
    request: Request,
    status: int,
    title: str,
    text: str,
    links: Sequence[tuple[str, str]] = (),
) -> Response:
    """An error or choice as a small page, or as JSON for clients that ask for it."""
    if prefers_json(request):
        body: dict[str, Any] = {"detail": text}
        if links:
            body["links"] = dict(links)
        return JSONResponse(body, status_code=status, headers=NOT_CACHED)
    html = render_page("message.html", title=title, message=text, links=list(links))
    return HTMLResponse(html, status_code=status, headers=NOT_CACHED)


def not_found(request: Request, ref: str) -> Response:
    return message(
        request,
        404,
        "Lock not found",
        f"There is no lock with id {ref!r}. A lock id is 64 hex characters; "
        "a prefix of 8 or more also works when it is unique.",
    )


def ambiguous(request: Request, ref: str, candidates: list[str], suffix: str) -> Response:
    return message(
        request,
        300,
        "Ambiguous lock id",
        f"{len(candidates)} locks start with {ref!r}; use a longer prefix or the full id.",
        [(c, f"/l/{c}{suffix}") for c in candidates],
    )


def find(request: Request, session: Session, ref: str, suffix: str = "") -> Lock | Response:
    """The lock `ref` names exactly, or the redirect/300/404 response to answer instead."""
    found = resolve(session, ref)
    if found.lock is not None:
        if found.lock.id == ref:
            return found.lock
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(
            f"/l/{found.lock.id}{suffix}{query}",
            status_code=307,
            headers={"Cache-Control": "no-cache"},
        )
    if found.ambiguous:
        return ambiguous(request, ref, found.candidates, suffix)
    return not_found(request, ref)
