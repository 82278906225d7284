"""Read locks by id; search them, diff two, and import a lockfile without a solve."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from app.archive.views import archive_links
from app.db.models import Lock
from app.db.session import session_scope
from app.errors import InputError
from app.locks.diff import diff_locks
from app.locks.importer import ImportRefused, import_lockfile
from app.locks.refs import resolve
from app.locks.search import search_locks
from app.locks.store import count_requests, find_lock, lock_requests, lock_view
from app.web.auth import ImportCaller
from app.web.deps import SessionDep, SettingsDep
from app.web.http_cache import RenderCache, cached
from app.web.lock_schemas import (
    ImportBody,
    ImportView,
    LockDiff,
    LockPage,
    LockRequests,
)
from app.web.responses import AUTH, BODY, NOT_FOUND, error
from app.web.schemas import LockView

router = APIRouter(prefix="/api/v1/locks", tags=["locks"])

#: Past any real page, and inside a 64-bit SQL integer (a bigger one was a 500 on SQLite).
MAX_OFFSET = 1_000_000_000


def _links(base_url: str, lock_id: str) -> dict[str, str]:
    return {
        "self": f"{base_url}/api/v1/locks/{lock_id}",
        "permalink": f"{base_url}/l/{lock_id}",
    }


@router.get("", response_model=LockPage)
def list_locks(
    session: SessionDep,
    settings: SettingsDep,
    package: Annotated[str | None, Query(description="only locks holding this package")] = None,
    version: Annotated[
        str | None, Query(description="conda version spec for `package`, e.g. 2.5.*")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Recent locks, newest first, optionally those with `package` at a `version` spec."""
    try:
        page = search_locks(session, package, version, limit, offset)
    except InputError as exc:
        raise HTTPException(status_code=422, detail=[exc.to_detail()]) from exc
    for item in page.items:
        item["links"] = _links(settings.base_url, item["id"])
    links: dict[str, str] = {}
    filters = {k: v for k, v in (("package", package), ("version", version)) if v}

    def page_link(at: int) -> str:
        return "/api/v1/locks?" + urlencode({**filters, "limit": limit, "offset": at})

    if offset + limit < page.total:
        links["next"] = page_link(offset + limit)
    if offset > 0:
        links["prev"] = page_link(max(offset - limit, 0))
    return {
        "items": page.items,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "links": links,
    }


@router.post(
    "/import",
    status_code=201,
    response_model=ImportView,
    responses={
        200: {"model": ImportView, "description": "the same lock already existed"},
        **AUTH,
        **BODY,
    },
)
def import_lock(
    body: ImportBody,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _caller: ImportCaller,
) -> dict[str, Any]:
    """Archive an existing environment: every package is checked against its channel."""
    try:
        imported = import_lockfile(
            session, settings, body.content, body.format, body.platform, body.environment
        )
    except ImportRefused as exc:
        raise HTTPException(
            status_code=422, detail=[error.to_detail() for error in exc.errors]
        ) from exc
    except InputError as exc:
        raise HTTPException(status_code=422, detail=[exc.to_detail()]) from exc
    if not imported.created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/locks/{imported.lock_id}"
    return {
        "lock_id": imported.lock_id,
        "created": imported.created,
        "format": imported.format,
        "targets": imported.targets,
        "links": _links(settings.base_url, imported.lock_id),
    }


def _lock_by_ref(session: SessionDep, ref: str) -> Lock:
    """A full id or unique prefix -> the lock; 404 unknown, 409 ambiguous."""
    found = resolve(session, ref)
    if found.lock is not None:
        return found.lock
    if found.ambiguous:
        raise HTTPException(
            status_code=409,
            detail=f"lock id prefix {ref!r} is ambiguous: {', '.join(found.candidates)}",
        )
    raise HTTPException(status_code=404, detail=f"no lock with id {ref!r}")


@router.get(
    "/{a}/diff/{b}",
    response_model=LockDiff,
    responses={**NOT_FOUND, 409: error("a lock id prefix is ambiguous")},
)
def diff(a: str, b: str, session: SessionDep) -> dict[str, Any]:
    """Per target: packages added, removed and changed from lock `a` to lock `b`."""
    lock_a, lock_b = _lock_by_ref(session, a), _lock_by_ref(session, b)
    return diff_locks(lock_view(session, lock_a), lock_view(session, lock_b))


@router.get("/{ref}/requests", response_model=LockRequests, responses=NOT_FOUND)
def requests_of_lock(
    ref: str,
    session: SessionDep,
    job: Annotated[str | None, Query(max_length=64, description="only this job's")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The requests (solve jobs, imports) that produced the lock, newest first, each with its
    own name, submitted spec and provenance: what was asked belongs to each request, not
    to the lock. Not immutable, unlike the lock: a later request can reach the same lock."""
    lock = _lock_by_ref(session, ref)
    items = lock_requests(session, lock.id, job_id=job, limit=limit)
    total = len(items) if job is not None else count_requests(session, lock.id)
    return {"lock_id": lock.id, "total": total, "items": items}


_rendered_locks = RenderCache()


def _render_lock(lock_id: str, base_url: str) -> bytes | None:
    """The lock's JSON bytes, or None when there is no such lock (runs in the thread pool)."""
    with session_scope() as session:
        lock = find_lock(session, lock_id)
        if lock is None:
            return None
        document = {
            **lock_view(session, lock),
            "archive": archive_links(session, lock, base_url),
        }
    return LockView.model_validate(document).model_dump_json().encode()


def _full_id(ref: str) -> str:
    """The full id a prefix names (404 unknown, 409 ambiguous, listing the candidates)."""
    with session_scope() as session:
        return _lock_by_ref(session, ref).id


@router.get(
    "/{lock_id}",
    response_model=LockView,
    responses={
        **NOT_FOUND,
        307: {"description": "a unique prefix of 8+ hex: redirects to the full id"},
        409: error("a lock id prefix is ambiguous"),
    },
)
async def get_lock(lock_id: str, request: Request, settings: SettingsDep) -> Response:
    """The lock as JSON. Its bytes never change, so they are rendered once per process
    and served `immutable` with a strong ETag (304 on If-None-Match). A unique prefix
    redirects (307, not cached: a later lock may share it) to the full id.

    Async so that a cached lock is answered on the event loop, with no thread-pool hop
    and no database session; only a miss renders, in the thread pool.
    """
    key = (lock_id, settings.base_url)
    body = _rendered_locks.get(key)
    if body is None:
        body = await run_in_threadpool(_render_lock, lock_id, settings.base_url)
        if body is None:
            full_id = await run_in_threadpool(_full_id, lock_id)
            return RedirectResponse(
                f"/api/v1/locks/{full_id}", status_code=307, headers={"Cache-Control": "no-cache"}
            )
        _rendered_locks.put(key, body)
    return cached(request, body, "application/json")
