"""What the `condarchive` subcommands share: exit codes, the server they talk to, errors.

Exit codes mean one thing in every command:
0 done; 1 the work failed (a solve or install failed, the server or an upstream could not
be reached or answered 5xx, the archive is corrupt); 2 the request was refused or
malformed (bad arguments, an unreadable file or configuration, no database, an unknown
lock, or the server saying 4xx: 401, 403, 404, 413, 422, 429).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_server_argument(parser: argparse.ArgumentParser) -> None:
    """``--server``, for the commands that talk to a running condarchive over HTTP."""
    parser.add_argument(
        "--server", help="condarchive URL (default CONDARCHIVE_PUBLIC_URL or local)"
    )


def server_url(args: argparse.Namespace) -> str:
    """The ``--server`` given, or the configured public URL."""
    if args.server:
        return args.server.rstrip("/")
    from app.config import get_settings

    return get_settings().base_url


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print ``error: message`` to stderr; return `code`."""
    print(f"error: {message}", file=sys.stderr)
    return code


def print_error(body: Any) -> None:
    """Print the ``detail`` of an error body, one line per problem of a 422."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        for item in detail:
            loc = ".".join(str(p) for p in item.get("loc", []))
            print(f"error: {loc}: {item.get('msg')}", file=sys.stderr)
    else:
        print(f"error: {detail}", file=sys.stderr)


def exit_code_for_status(status: int) -> int:
    """The exit code of a server answer that is no success: 4xx refused, the rest failed."""
    return EXIT_USAGE if 400 <= status < 500 else EXIT_FAILED


def missing_database() -> int | None:
    """For the operator commands that work on the database directly (`verify`, `token`):
    None when there is a database to use, else EXIT_USAGE once the reason is printed.

    An embedded (SQLite) database that does not exist is not created here: run from the
    wrong directory, or without the deployment's settings, the command would otherwise
    make an empty data directory and fail on a table that is not there.
    """
    from sqlalchemy.engine import make_url

    from app.config import CONFIG_ENV, config_file, get_settings

    settings = get_settings()
    url = settings.resolved_database_url
    if not settings.embedded:
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if Path(database).is_file():
        return None
    where = f" (configuration {config_file()})" if config_file() else ""
    return fail(
        f"no database at {database}{where}; point at the service's with --config FILE, "
        f"{CONFIG_ENV} or CONDARCHIVE_DATA_DIR (or CONDARCHIVE_DATABASE_URL)",
        EXIT_USAGE,
    )
