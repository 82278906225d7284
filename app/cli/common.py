"""What the `condarchive` subcommands share: exit codes, the server they talk to, errors.

Exit codes: 0 done, 1 failed (solve failed, unknown lock, server unreachable, corrupt
archive), 2 usage (bad arguments, or input the server refused with 422).
"""

from __future__ import annotations

import argparse
import sys
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
