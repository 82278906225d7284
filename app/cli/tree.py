"""`condarchive tree`: why each package of a lock is there, printed as `pixi tree` does.

The graph comes from the server (``GET /api/v1/locks/{id}/tree?target=T``): the requested
packages at the top and what each requires below it, or with ``--invert PKG`` what
requires PKG, up to the requested packages. Exit codes as in app/cli/common.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote, urlencode

from app.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_server_argument,
    exit_code_for_status,
    print_error,
    server_url,
)


def tree_path(lock_id: str, target: str | None) -> str:
    query = f"?{urlencode({'target': target})}" if target else ""
    return f"/api/v1/locks/{quote(lock_id)}/tree{query}"


def _fetch(args: argparse.Namespace) -> tuple[dict[str, Any] | None, int]:
    """The tree JSON, or None and the exit code once the reason is printed."""
    import httpx

    from app.auth.client import auth_headers

    headers = {"Accept": "application/json", **auth_headers()}
    try:
        with httpx.Client(
            base_url=server_url(args), timeout=args.timeout, headers=headers
        ) as client:
            response = client.get(tree_path(args.lock_id, args.target))
    except httpx.HTTPError as exc:
        print(f"error: cannot reach condarchive at {server_url(args)}: {exc}", file=sys.stderr)
        return None, EXIT_FAILED
    if response.status_code != 200:
        try:
            print_error(response.json())
        except ValueError:
            print(f"error: HTTP {response.status_code}: {response.text.strip()}", file=sys.stderr)
        return None, exit_code_for_status(response.status_code)
    return response.json(), EXIT_OK


def cmd_tree(args: argparse.Namespace) -> int:
    from app.locks.tree import find_packages, render_inverted, render_tree

    tree, code = _fetch(args)
    if tree is None:
        return code
    if args.json:
        print(json.dumps(tree, indent=2, sort_keys=True))
        return EXIT_OK
    if args.invert:
        if not find_packages(tree, args.invert):
            print(
                f"error: target {tree['target']} of lock {tree['lock_id'][:12]} has no "
                f"package {args.invert!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        sys.stdout.write(render_inverted(tree, args.invert))
    else:
        sys.stdout.write(render_tree(tree))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `tree` to the `condarchive` subparsers."""
    tree = sub.add_parser(
        "tree", help="a lock's dependency tree, or with --invert PKG why PKG is there"
    )
    tree.add_argument("lock_id", help="lock id or a unique prefix of 8+ characters")
    tree.add_argument("-t", "--target", help="target name (optional if the lock has one)")
    tree.add_argument(
        "-i",
        "--invert",
        metavar="PKG",
        help="print what requires PKG, up to the requested packages",
    )
    tree.add_argument("--json", action="store_true", help="print the tree JSON instead")
    add_server_argument(tree)
    tree.add_argument("--timeout", type=float, default=300, help="seconds to wait for the server")
    tree.set_defaults(func=cmd_tree)
