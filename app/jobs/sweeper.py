"""The sweeper: gives back work whose worker died and re-sends work whose message was lost.

The database is the source of truth for jobs; a broker message is only a nudge. A nudge
can be lost: Redis restarted without persistence, the broker was down when the API
answered 202, a worker was killed holding the message. Every sweep therefore

1. takes back running solve jobs whose worker stopped renewing its lease
   (CONDARCHIVE_JOB_LEASE): queued again, or failed with kind ``attempts`` once they
   have had CONDARCHIVE_MAX_ATTEMPTS tries;
2. re-sends queued jobs that have waited longer than CONDARCHIVE_SWEEP_GRACE, unless the
   broker's queue holds at least as many messages as the database has queued work (a
   long, healthy queue is not sent a second copy of everything), and never the same job
   twice within the grace period;
3. re-sends lock archives that stopped showing signs of life (app/archive/state.py), the same
   way the archive's beat task does: a silent running one always (its worker died with
   its message), a silent queued one on the same terms as queued jobs.

Re-sending is always safe, because a worker claims a job in the database before acting
on it (app/jobs/state.py); the grace period and the queue length only keep it from being
wasteful.

It runs as a thread in `condarchive serve` (every CONDARCHIVE_SWEEP_INTERVAL seconds)
rather than as a Celery beat entry: the API is the one process every deployment runs,
embedded or distributed, whereas beat is optional and must run exactly once. Several
API replicas may all sweep: each re-send is stamped by one conditional UPDATE, so two
replicas never re-send the same job in the same grace period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What one sweep did (ids), and the queue length it saw (None: unknown)."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    waiting: int | None = None
    queued: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.resent or self.archives)

    def __str__(self) -> str:
        return (
            f"requeued {len(self.requeued)} expired, failed {len(self.failed)} out of "
            f"attempts, re-sent {len(self.resent)} solves and {len(self.archives)} archives "
            f"(queue held {self.waiting if self.waiting is not None else 'unknown'} "
            f"messages for {self.queued} queued)"
        )


def _queued_archives(session: Session) -> int:
    from app.db.models import LockArchive

    query = select(func.count()).where(LockArchive.status == "queued")
    return int(session.scalar(query) or 0)


def sweep(
    session: Session,
    settings: Settings,
    *,
    lease: float | None = None,
    grace: float | None = None,
    send: Callable[[str], bool] | None = None,
    depth: Callable[[], int | None] | None = None,
) -> SweepResult:
    """One sweep (see the module doc). `lease` and `grace` default to the settings;
    `serve` passes 0 for both at start when its own worker is the only one."""
    from app.archive.state import stale_runs, touch_run
    from app.jobs.state import count_queued, due_for_resend, requeue_expired
    from app.queue.send import enqueue_solve, queue_depth, send_archive_task

    send = send or enqueue_solve
    lease = settings.job_lease if lease is None else lease
    grace = settings.sweep_grace if grace is None else grace
    result = SweepResult()
    result.requeued, result.failed = requeue_expired(session, lease, settings.max_attempts)
    result.waiting = (depth or queue_depth)()
    result.queued = count_queued(session) + _queued_archives(session)
    if result.waiting is not None and result.waiting >= result.queued:
        # Nothing waiting in the database is missing from the queue, except what the
        # sweep just took back from dead workers: their messages went with them.
        result.resent = due_for_resend(session, 0.0, only=result.requeued)
    else:
        result.resent = due_for_resend(session, grace)
    due, result.resent = result.resent, []
    for job_id in due:
        if not send(job_id):  # the broker is down: the rest wait for the next grace period
            return result
        result.resent.append(job_id)
    # A running archive that went silent for two leases lost its worker, and its message
    # went with it (Redis gives an unacked one back only after its visibility timeout):
    # always re-sent, like the solves taken back above. A silent queued one only when
    # the queue may lack its message.
    statuses = ("running",)
    if result.waiting is None or result.waiting < result.queued:
        statuses = ("queued", "running")
    for lock_id in stale_runs(session, settings.archive_lease * 2, statuses):
        touch_run(session, lock_id)  # re-sent now: not again for two leases
        if not send_archive_task(lock_id):
            return result
        result.archives.append(lock_id)
    return result


class Sweeper:
    """Runs :func:`sweep` every `interval` seconds in a daemon thread until stopped.

    A failed sweep (database or broker down) is logged and tried again next time; the
    API keeps answering meanwhile (503 while the database is down).
    """

    def __init__(self, settings: Settings, interval: float | None = None) -> None:
        self.settings = settings
        self.interval = settings.sweep_interval if interval is None else interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        if self.interval > 0:
            self._thread = threading.Thread(
                target=self._run, name="condarchive-sweeper", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        from app.db.session import session_scope

        while not self._stop.wait(self.interval):
            try:
                with session_scope() as session:
                    result = sweep(session, self.settings)
            except Exception as exc:  # noqa: BLE001 - try again next interval
                log.warning("sweep for lost jobs failed (will retry): %s", _one_line(exc))
                continue
            if result:
                log.warning("sweep: %s", result)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
