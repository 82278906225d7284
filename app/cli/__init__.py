"""The `condarchive` command: run the service, and lock environments against it.

One module per group of subcommands: service.py (serve, worker, beat, db), locks.py (lock,
show, export, import, diff, list, search), archive.py (install, verify), bundle.py (bundle),
tree.py (tree), tokens.py (token);
the exit codes and what the commands share are in common.py. ``--config FILE`` (before the
subcommand) names a TOML settings file, as CONDARCHIVE_CONFIG does; see app/config.py.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condarchive", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default CONDARCHIVE_CONFIG); CONDARCHIVE_* variables override it",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from app.cli import archive, bundle, locks, service, tokens, tree

    service.register(sub)  # serve, worker, beat, db
    locks.register(sub)  # lock, show, export, import, diff, list, search
    archive.register(sub)  # install, verify
    tokens.register(sub)  # token create, list, revoke
    tree.register(sub)  # tree
    bundle.register(sub)  # bundle
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from app.cli.common import EXIT_USAGE, fail
    from app.config import ConfigFileError, get_settings, use_config_file

    args = build_parser().parse_args(argv)
    try:
        if args.config:
            use_config_file(args.config)
        get_settings()  # a bad file or value is refused here, in one line, before any work
    except ConfigFileError as exc:
        return fail(str(exc), EXIT_USAGE)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return fail(f"invalid settings: {problems}", EXIT_USAGE)
    code = int(args.func(args) or 0)
    if getattr(args, "exit_at_once", False):
        # py-rattler's native (tokio) threads may still hold the GIL machinery when the
        # interpreter finalizes, which then aborts ("PyGILState_Release ... finalizing",
        # exit -6) after the work is done. A command that ran rattler.install ends here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
