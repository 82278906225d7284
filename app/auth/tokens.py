"""API tokens: who may write.

A token is a 256-bit random string shown once, when it is created. The database keeps
only its sha256: a slow password hash buys nothing against a 256-bit secret, and a leaked
table then holds no usable token. Every request looks its token up, so a revoked token is
refused from the next request on.

Scopes: ``solve`` submits solves and archive requests, ``import`` imports existing
environments, ``admin`` may do both and also deletes failed jobs, re-runs verification
and reads the proxy configuration. With ``CONDARCHIVE_AUTH=none`` (the embedded default)
nothing is checked.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import ApiToken, utcnow
from app.db.session import session_scope
from app.web.deps import SessionDep, SettingsDep

SCOPES = ("solve", "import", "admin")
TOKEN_PREFIX = "cat_"  # condarchive token: recognisable in a leaked config or log
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
#: `last_used_at` is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token command that cannot be done (bad name or scope, name taken, unknown name)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, scope: str) -> str:
    """Create a token and return its plaintext; only its hash is stored. Commits."""
    if scope not in SCOPES:
        raise TokenError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    if not _NAME.fullmatch(name):
        raise TokenError(f"token name {name!r} must be 1-128 letters, digits, '.', '_', '@' or '-'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, scope=scope, token_hash=hash_token(token)))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise TokenError(f"a token named {name!r} exists already") from exc
    return token


def revoke_token(session: Session, name: str) -> None:
    """Revoke by name. Commits. Raises TokenError for an unknown or already revoked name."""
    row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise TokenError(f"no token named {name!r}")
    if row.revoked_at is not None:
        raise TokenError(f"token {name!r} was revoked already")
    row.revoked_at = utcnow()
    session.commit()


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


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
    """The live token row, or 401; notes when it was last used (at most once a minute)."""
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        raise _unauthorized("the API token is not valid here")
    if row.revoked_at is not None:
        raise _unauthorized(f"the API token {row.name!r} has been revoked")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    return row


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


SolveCaller = Annotated[Caller, Depends(require_scope("solve"))]
ImportCaller = Annotated[Caller, Depends(require_scope("import"))]
AdminCaller = Annotated[Caller, Depends(require_scope("admin"))]
Reader = Annotated[Caller, Depends(require_reader)]


def _loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_notice(auth: str, public_reads: bool, host: str) -> str:
    """The line `serve` prints on start: who may write, loudly so when anyone can."""
    if auth == "token":
        reads = (
            "reads are public"
            if public_reads
            else "reads need a token too (CONDARCHIVE_PUBLIC_READS=false)"
        )
        return f"auth: writes need an API token (CONDARCHIVE_AUTH=token); {reads}"
    if _loopback(host):
        return (
            f"auth: off (CONDARCHIVE_AUTH=none): open to anyone who can reach {host}, "
            "which is this machine only"
        )
    return (
        f"WARNING: auth is off (CONDARCHIVE_AUTH=none) and condarchive listens on {host}: "
        "anyone who can reach it may submit solves, imports and archive downloads. "
        "Set CONDARCHIVE_AUTH=token and create tokens with `condarchive token create`."
    )
