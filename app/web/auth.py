"""Who is calling: FastAPI dependencies that check a request's API token and its scope.

The tokens themselves (hashing, creating, revoking, scopes) are in app/auth/tokens.py; this
is the web side: the `Authorization: Bearer` header, and 401/403 answers that say what to send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.auth.tokens import TokenRefused, authenticate
from app.db.models import ApiToken
from app.db.session import session_scope
from app.web.deps import SessionDep, SettingsDep


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token, or nobody (auth is off, or a public read)."""

    token_id: int | None
    name: str | None
    scope: str | None


ANONYMOUS = Caller(None, None, None)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def _lookup(session: Session, token: str) -> ApiToken:
    """The live token row, or 401."""
    try:
        return authenticate(session, token)
    except TokenRefused as exc:
        raise _unauthorized(str(exc)) from exc


def require_scope(scope: str) -> Callable[..., Caller]:
    """A dependency that admits callers whose token has `scope`, or admin."""

    def check(request: Request, session: SessionDep, settings: SettingsDep) -> Caller:
        if settings.resolved_auth == "none":
            return ANONYMOUS
        token = _bearer(request)
        if token is None:
            raise _unauthorized(
                f"this needs an API token with scope {scope!r}: send 'Authorization: Bearer "
                "<token>' (an operator creates one with `condarchive token create`)"
            )
        row = _lookup(session, token)
        if row.scope not in (scope, "admin"):
            raise HTTPException(
                status_code=403,
                detail=f"the API token {row.name!r} has scope {row.scope!r}; "
                f"this needs scope {scope!r}",
            )
        return Caller(row.id, row.name, row.scope)

    return check


def _caller_of(token: str) -> Caller:
    with session_scope() as session:
        row = _lookup(session, token)
        return Caller(row.id, row.name, row.scope)


async def require_reader(request: Request, settings: SettingsDep) -> Caller:
    """Reads are public unless CONDARCHIVE_PUBLIC_READS=false; then any valid token reads.

    Async, and with a session of its own only when a token must be looked up: it guards
    every read, and public reads (the default) then cost no thread-pool hop or session.
    """
    if settings.resolved_auth == "none" or settings.public_reads:
        return ANONYMOUS
    token = _bearer(request)
    if token is None:
        raise _unauthorized(
            "this server needs an API token for every request (CONDARCHIVE_PUBLIC_READS=false): "
            "send 'Authorization: Bearer <token>'"
        )
    return await run_in_threadpool(_caller_of, token)


async def require_docs_reader(request: Request, settings: SettingsDep) -> Caller:
    """`require_reader` for the docs pages, whose refusal says how to read the schema."""
    if settings.resolved_auth != "none" and not settings.public_reads and not _bearer(request):
        raise _unauthorized(
            "this server needs an API token for every request (CONDARCHIVE_PUBLIC_READS=false), "
            "and a browser cannot send one for this page: read the schema with "
            "`curl -H 'Authorization: Bearer <token>' <server>/openapi.json`"
        )
    return await require_reader(request, settings)


SolveCaller = Annotated[Caller, Depends(require_scope("solve"))]
ImportCaller = Annotated[Caller, Depends(require_scope("import"))]
AdminCaller = Annotated[Caller, Depends(require_scope("admin"))]
