"""The `condarchive` command: run the service, and lock environments against it.

Exit codes: 0 done, 1 failed (solve failed, server unreachable), 2 usage (bad arguments,
or input the server refused with 422).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _env_with(**values: str) -> None:
    """Set CONDARCHIVE_* for this process and the worker it starts, then re-read settings."""
    from app.config import get_settings

    for key, value in values.items():
        os.environ[f"CONDARCHIVE_{key.upper()}"] = value
    get_settings.cache_clear()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.archive.state import resend_lost_archives
    from app.auth.tokens import auth_notice
    from app.config import get_settings
    from app.db.migrate import upgrade
    from app.db.session import session_scope
    from app.jobs.sweeper import Sweeper, sweep

    _env_with(host=args.host, port=str(args.port))
    settings = get_settings()
    upgrade()
    worker: subprocess.Popen[bytes] | None = None
    if not args.no_worker:
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"])
    # Jobs whose message may be gone: in embedded mode the only worker is ours, so every
    # running job belongs to a dead process; with remote workers, only expired leases do.
    # Every queued job is re-sent now, unless the queue already holds enough messages.
    own_worker = bool(settings.embedded and worker)
    with session_scope() as session:
        sweep(session, settings, lease=0.0 if own_worker else None, grace=0.0)
        resend_lost_archives(session, own_worker=own_worker)
    sweeper = Sweeper(settings).start()  # then every CONDARCHIVE_SWEEP_INTERVAL seconds
    mode = "embedded (SQLite, local broker)" if settings.embedded else "distributed"
    print(
        f"condarchive serving on http://{args.host}:{args.port} [{mode}], "
        f"data in {settings.resolved_data_dir}",
        file=sys.stderr,
    )
    print(auth_notice(settings.resolved_auth, settings.public_reads, args.host), file=sys.stderr)
    try:
        uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port)
    finally:
        sweeper.stop()
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.queue.celery_app import celery_app

    queue = get_settings().queue
    argv = ["worker", "--loglevel", args.loglevel, "-Q", queue, "--pool", args.pool]
    argv += ["--hostname", f"condarchive-{os.getpid()}@%h"]
    if args.pool != "solo":
        argv += ["--concurrency", str(args.concurrency)]
    celery_app.worker_main(argv)
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    upgrade(args.revision)
    print(f"database upgraded to {args.revision}", file=sys.stderr)
    return EXIT_OK


def parse_cli_target(text: str) -> str | dict[str, Any]:
    """`linux-64`, `linux-64-cuda12`, or `NAME=PLATFORM:__vp=ver,__vp=ver`."""
    if "=" in text.split(":", 1)[0] and ":" in text:
        name, rest = text.split("=", 1)
        platform, _, packages = rest.partition(":")
        return {
            "name": name,
            "platform": platform,
            "virtual_packages": [p for p in packages.split(",") if p],
        }
    return text


def _server(args: argparse.Namespace) -> str:
    if args.server:
        return args.server.rstrip("/")
    from app.config import get_settings

    return get_settings().base_url


def _print_error(body: Any) -> None:
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        for item in detail:
            loc = ".".join(str(p) for p in item.get("loc", []))
            print(f"error: {loc}: {item.get('msg')}", file=sys.stderr)
    else:
        print(f"error: {detail}", file=sys.stderr)


def cmd_lock(args: argparse.Namespace) -> int:
    import httpx

    from app.auth.client import auth_headers

    body: dict[str, Any] = {"channel_priority": args.channel_priority}
    if args.file:
        try:
            body["environment"] = (
                Path(args.file).read_text() if args.file != "-" else sys.stdin.read()
            )
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    else:
        if not args.spec:
            print("error: give an environment.yml file or --spec", file=sys.stderr)
            return EXIT_USAGE
        body["dependencies"] = args.spec
        body["channels"] = args.channel or ["conda-forge"]
    if args.target:
        body["targets"] = [parse_cli_target(t) for t in args.target]
    if args.exclude_newer:
        body["exclude_newer"] = args.exclude_newer
    server = _server(args)
    tty = sys.stderr.isatty()
    try:
        with httpx.Client(base_url=server, timeout=30, headers=auth_headers()) as client:
            response = client.post("/api/v1/solves", json=body)
            if response.status_code == 422:
                _print_error(response.json())
                return EXIT_USAGE
            if response.status_code not in (200, 202):
                print(
                    f"error: server answered {response.status_code}: {response.text}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            job = response.json()
            deadline = time.monotonic() + args.timeout
            last = ""
            while job["status"] in ("queued", "running"):
                if time.monotonic() > deadline:
                    print(
                        f"error: gave up waiting after {args.timeout}s; job {job['id']}",
                        file=sys.stderr,
                    )
                    return EXIT_FAILED
                time.sleep(0.2)
                job = client.get(f"/api/v1/solves/{job['id']}").json()
                progress = job.get("progress") or {}
                done = sum(1 for v in progress.values() if v == "done")
                stage = job.get("stage") or "queued"
                line = f"{job['status']}: {stage} ({done}/{len(progress)} targets done)"
                if tty and line != last:
                    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
                    last = line
            if tty:
                print("\r\033[K", end="", file=sys.stderr)
            if job["status"] == "failed":
                error = job.get("error") or {}
                print(
                    f"solve failed ({error.get('kind')}): {error.get('message')}", file=sys.stderr
                )
                explanation = (error.get("detail") or {}).get("explanation")
                if explanation:
                    print(explanation, file=sys.stderr)
                return EXIT_FAILED
            lock = client.get(f"/api/v1/locks/{job['lock_id']}").json()
    except httpx.HTTPError as exc:
        print(f"error: cannot reach condarchive at {server}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.output:
        Path(args.output).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    print(job["lock_id"])
    print(job["links"].get("permalink", ""))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="condarchive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, by default, a worker alongside)")
    serve.add_argument("--host", default=os.environ.get("CONDARCHIVE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("CONDARCHIVE_PORT", "8000")))
    serve.add_argument("--no-worker", action="store_true", help="API only; run workers separately")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker that solves jobs")
    worker.add_argument("--pool", default="solo", choices=["solo", "threads", "prefork"])
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db)

    lock = sub.add_parser("lock", help="solve an environment and print its lock id and link")
    lock.add_argument("file", nargs="?", help="environment.yml (or - for stdin)")
    lock.add_argument("--spec", action="append", help="a match spec (instead of a file)")
    lock.add_argument("-c", "--channel", action="append", help="channel for --spec")
    lock.add_argument(
        "-t",
        "--target",
        action="append",
        help="linux-64, linux-64-cuda12, or NAME=PLATFORM:__cuda=12.4,__glibc=2.28",
    )
    lock.add_argument("--exclude-newer", help="ISO time: solve as the channels stood then")
    lock.add_argument(
        "--channel-priority", default="strict", choices=["strict", "flexible", "disabled"]
    )
    lock.add_argument("-o", "--output", help="write the lock (JSON) to this file")
    lock.add_argument("--server", help="condarchive URL (default CONDARCHIVE_PUBLIC_URL or local)")
    lock.add_argument("--timeout", type=float, default=900, help="seconds to wait for the solve")
    lock.set_defaults(func=cmd_lock)

    from app.cli.archive import register as register_archive
    from app.cli.locks import add_lock_commands
    from app.cli.tokens import register as register_tokens

    register_archive(sub)  # install, verify, beat
    add_lock_commands(sub)  # show, export, import, diff
    register_tokens(sub)  # token create, list, revoke
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
