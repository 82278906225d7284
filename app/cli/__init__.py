"""The `condarchive` command: run the service, and lock environments against it.

One module per group of subcommands: service.py (serve, worker, beat, db), locks.py (lock,
show, export, import, diff), archive.py (install, verify), tokens.py (token); the exit
codes and what the commands share are in common.py.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condarchive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from app.cli import archive, locks, service, tokens

    service.register(sub)  # serve, worker, beat, db
    locks.register(sub)  # lock, show, export, import, diff
    archive.register(sub)  # install, verify
    tokens.register(sub)  # token create, list, revoke
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
