"""API tokens: who may write.

A token is a 256-bit random string shown once, when it is created. The database keeps
only its sha256: a slow password hash buys nothing against a 256-bit secret, and a leaked
table then holds no usable token. Every request looks its token up, so a revoked token is
refused from the next request on.

Scopes: ``solve`` submits solves and archive requests, ``import`` imports existing
environments, ``admin`` may do both and also deletes failed jobs, re-runs verification
and reads the proxy configuration. With ``CONDARCHIVE_AUTH=none`` (the embedded default)
nothing is checked. The requests' side (reading the bearer token, checking its scope) is
in app/web/auth.py; this module is the store, and the CLI's `token` commands use it too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.db.models import ApiToken

# SQLAlchemy and the models are imported by the functions that use them: the CLI builds its
# parser from SCOPES, and every `condarchive` command would otherwise pay for importing them.

SCOPES = ("solve", "import", "admin")
TOKEN_PREFIX = "cat_"  # condarchive token: recognisable in a leaked config or log
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
#: `last_used_at` is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token command that cannot be done (bad name or scope, name taken, unknown name)."""


class TokenRefused(ValueError):
    """A token sent with a request that admits nothing: unknown here, or revoked."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, scope: str) -> str:
    """Create a token and return its plaintext; only its hash is stored. Commits."""
    from sqlalchemy.exc import IntegrityError

    from app.db.models import ApiToken

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
    from sqlalchemy import select

    from app.db.models import ApiToken, utcnow

    row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise TokenError(f"no token named {name!r}")
    if row.revoked_at is not None:
        raise TokenError(f"token {name!r} was revoked already")
    row.revoked_at = utcnow()
    session.commit()


def list_tokens(session: Session) -> list[ApiToken]:
    from sqlalchemy import select

    from app.db.models import ApiToken

    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def authenticate(session: Session, token: str) -> ApiToken:
    """The live token row, or TokenRefused; notes when it was last used (at most once a
    minute), so checking a token on every request is one SELECT, not a write each time."""
    from sqlalchemy import select, update

    from app.db.models import ApiToken, utcnow

    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        raise TokenRefused("the API token is not valid here")
    if row.revoked_at is not None:
        raise TokenRefused(f"the API token {row.name!r} has been revoked")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    return row


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
