"""`condarchive token create | list | revoke`: API tokens, for the operator on the server host.

Like `db upgrade` and `verify`, these work on the database directly (the same
CONDARCHIVE_* settings as `serve`), not over HTTP: whoever can reach the database is
the operator already, and no token is needed to make the first one. A token is printed
once, at creation; only its hash is kept. Exit codes as in app/cli/common.py: 0 done, 1 the
database could not be used, 2 refused (no database, unknown or revoked name, name taken).
"""

from __future__ import annotations

import argparse
import json
import sys

from app.auth.tokens import SCOPES
from app.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, missing_database


def _database_error(exc: Exception) -> int:
    reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
    print(
        f"error: cannot use the database ({reason}); run `condarchive db upgrade` first, "
        "with the same settings as serve (--config, CONDARCHIVE_CONFIG or CONDARCHIVE_*)",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_create(args: argparse.Namespace) -> int:
    if (refused := missing_database()) is not None:
        return refused
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth.tokens import TokenError, create_token
    from app.db.session import session_scope

    try:
        with session_scope() as session:
            token = create_token(session, args.name, args.scope)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        return _database_error(exc)
    print(token)
    print(
        f"token {args.name!r} (scope {args.scope}) created; it is shown only now. "
        "Clients send it as 'Authorization: Bearer <token>' (the CLI reads CONDARCHIVE_TOKEN).",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    if (refused := missing_database()) is not None:
        return refused
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth.tokens import list_tokens
    from app.core.canonical import format_time
    from app.db.session import session_scope

    try:
        with session_scope() as session:
            rows = [
                {
                    "name": t.name,
                    "scope": t.scope,
                    "created_at": format_time(t.created_at),
                    "last_used_at": format_time(t.last_used_at),
                    "revoked_at": format_time(t.revoked_at),
                }
                for t in list_tokens(session)
            ]
    except SQLAlchemyError as exc:
        return _database_error(exc)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    print(f"{'name':<24} {'scope':<7} {'created':<21} {'last used':<21} revoked")
    for row in rows:
        print(
            f"{row['name']:<24} {row['scope']:<7} {row['created_at']:<21} "
            f"{row['last_used_at'] or '-':<21} {row['revoked_at'] or '-'}"
        )
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    if (refused := missing_database()) is not None:
        return refused
    from sqlalchemy.exc import SQLAlchemyError

    from app.auth.tokens import TokenError, revoke_token
    from app.db.session import session_scope

    try:
        with session_scope() as session:
            revoke_token(session, args.name)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        return _database_error(exc)
    print(f"token {args.name!r} revoked; it is refused from now on", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `token create | list | revoke` to the `condarchive` parser."""
    token = sub.add_parser("token", help="API tokens: create, list, revoke (on the server host)")
    token_sub = token.add_subparsers(dest="token_command", required=True)

    create = token_sub.add_parser("create", help="create a token and print it (only this once)")
    create.add_argument("--name", required=True, help="who or what the token is for (unique)")
    create.add_argument("--scope", default="solve", choices=SCOPES, help="default: solve")
    create.set_defaults(func=cmd_create)

    listing = token_sub.add_parser("list", help="every token: scope, created, last used, revoked")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)

    revoke = token_sub.add_parser("revoke", help="revoke a token by name; refused at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_revoke)
