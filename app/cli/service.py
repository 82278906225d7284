"""`condarchive serve | worker | beat | db`: run the service's processes, and migrate its database.

`serve` runs the API (and, by default, two workers beside it: one for solves, one for
archive runs, so a slow download never holds up a solve); `worker` runs a Celery worker
that solves jobs and archives locks (``--queues`` to take only one kind).

Periodic checks: run `condarchive beat` next to at least one `condarchive worker`, with the
same CONDARCHIVE_* settings (it is `celery -A app.queue.celery_app:celery_app beat`, its
schedule file in the data directory). It sends `verify` every CONDARCHIVE_VERIFY_INTERVAL
seconds (default a day; reports at GET /api/v1/archive/verify) and re-sends lock archives
whose queue message was lost. Run exactly one beat per deployment.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from app.cli.common import EXIT_OK
from app.cli.supervise import Supervisor


def _env_with(**values: str) -> None:
    """Set CONDARCHIVE_* for this process and the worker it starts, then re-read settings."""
    from app.config import get_settings

    for key, value in values.items():
        os.environ[f"CONDARCHIVE_{key.upper()}"] = value
    get_settings.cache_clear()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_OK)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.archive.state import resend_lost_archives
    from app.auth.tokens import auth_notice
    from app.config import get_settings
    from app.db.migrate import upgrade
    from app.db.session import session_scope
    from app.jobs.sweeper import Sweeper, sweep

    # --host/--port over CONDARCHIVE_HOST/PORT over the configuration file; the workers
    # read the same (and the file itself: CONDARCHIVE_CONFIG is in their environment).
    host = args.host if args.host is not None else get_settings().host
    port = args.port if args.port is not None else get_settings().port
    _env_with(host=host, port=str(port))
    settings = get_settings()
    upgrade()
    workers: Supervisor | None = None
    if not args.no_worker:
        # One worker per queue, so a slow archive download never holds up a solve; each is
        # restarted when it dies (app/cli/supervise.py).
        command = [sys.executable, "-m", "app.cli", "worker", "-Q"]
        workers = Supervisor(
            {"solve": [*command, "solve"], "archive": [*command, "archive"]},
            backoff=settings.worker_restart_backoff,
        ).start()
    # Jobs whose message may be gone: in embedded mode the only worker is ours, so every
    # running job belongs to a dead process; with remote workers, only expired leases do.
    # Every queued job is re-sent now, unless the queue already holds enough messages.
    own_worker = bool(settings.embedded and workers)
    with session_scope() as session:
        sweep(session, settings, lease=0.0 if own_worker else None, grace=0.0)
        resend_lost_archives(session, own_worker=own_worker)
    sweeper = Sweeper(settings).start()  # then every CONDARCHIVE_SWEEP_INTERVAL seconds
    mode = "embedded (SQLite, local broker)" if settings.embedded else "distributed"
    print(
        f"condarchive serving on http://{host}:{port} [{mode}], "
        f"data in {settings.resolved_data_dir}",
        file=sys.stderr,
    )
    print(auth_notice(settings.resolved_auth, settings.public_reads, host), file=sys.stderr)
    # uvicorn shuts down on SIGTERM and then raises the signal again for the handler that
    # was there before it; the default one would end this process at once, skipping the
    # `finally` below and orphaning the workers. This one ends it through that `finally`.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port)
    finally:
        sweeper.stop()
        if workers is not None:
            workers.stop(timeout=20)
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.queue.celery_app import celery_app

    settings = get_settings()
    queues = {"solve": [settings.queue], "archive": [settings.archive_queue]}
    chosen = queues.get(args.queues, [settings.queue, settings.archive_queue])
    argv = ["worker", "--loglevel", args.loglevel, "-Q", ",".join(chosen), "--pool", args.pool]
    argv += ["--hostname", f"condarchive-{os.getpid()}@%h"]
    if args.pool != "solo":
        argv += ["--concurrency", str(args.concurrency)]
    celery_app.worker_main(argv)
    return EXIT_OK


def cmd_beat(args: argparse.Namespace) -> int:
    from app.config import get_settings
    from app.queue.celery_app import celery_app

    settings = get_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    schedule = settings.resolved_data_dir / "celerybeat-schedule"
    celery_app.start(["beat", "--loglevel", args.loglevel, "--schedule", str(schedule)])
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    upgrade(args.revision)
    print(f"database upgraded to {args.revision}", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add serve, worker, beat and db to the `condarchive` subparsers."""
    serve = sub.add_parser("serve", help="run the API (and, by default, a worker alongside)")
    serve.add_argument("--host", help="address (default CONDARCHIVE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default CONDARCHIVE_PORT, 8000)")
    serve.add_argument("--no-worker", action="store_true", help="API only; run workers separately")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker that solves jobs")
    worker.add_argument("--pool", default="solo", choices=["solo", "threads", "prefork"])
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument(
        "-Q",
        "--queues",
        choices=["all", "solve", "archive"],
        default="all",
        help="what to consume: solves, archive runs (downloads, verify), or both (default)",
    )
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.set_defaults(func=cmd_db)

    beat = sub.add_parser("beat", help="run Celery beat: periodic verify and lost-archive resend")
    beat.add_argument("--loglevel", default="INFO")
    beat.set_defaults(func=cmd_beat)
