"""A running job's heartbeat: renews its lease while the worker is alive.

The lease (CONDARCHIVE_JOB_LEASE) is how the rest of the system tells a slow job from a
dead worker: a worker killed mid-solve stops renewing it, and once it runs out the
sweeper (app/jobs/sweeper.py) gives the job to another worker. The beat runs in its own
thread with its own database session, so it keeps going while the solver is busy, and
it renews only the attempt it was started for (app/jobs/state.py: the attempt is the fencing
token), so a worker whose job was taken over learns it and stops renewing.

The same thread writes the job's progress (:meth:`Heartbeat.report`): the solve goes on
at once instead of waiting for an UPDATE and a COMMIT, which cost as much as a small
solve. A progress write renews the lease too. The final state is written with the job's
result, so a report still pending when the job ends is dropped.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from app.db.session import session_scope
from app.jobs.state import heartbeat, set_progress

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(job_id, attempt, lease):` renews the job's lease every lease/4 s."""

    def __init__(self, job_id: str, attempt: int, lease: float) -> None:
        self.job_id, self.attempt = job_id, attempt
        self.interval = max(lease / 4, 0.2)
        self.lost = False  # True once the job is no longer this attempt's
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._guard = threading.Lock()
        self._pending: tuple[str, dict[str, str]] | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True
        )

    def report(self, stage: str, progress: dict[str, str]) -> None:
        """Have the beat thread write this progress now; returns without waiting."""
        with self._guard:
            self._pending = (stage, dict(progress))
        self._wake.set()

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._guard:
                pending, self._pending = self._pending, None
            try:
                with session_scope() as session:
                    if pending is None:
                        alive = heartbeat(session, self.job_id, self.attempt)
                    else:
                        stage, progress = pending
                        alive = set_progress(session, self.job_id, stage, progress, self.attempt)
            except Exception as exc:  # noqa: BLE001 - the database may be back next beat
                log.warning("job %s: could not renew its lease: %s", self.job_id, exc)
                continue
            if not alive:
                self.lost = True
                log.warning(
                    "job %s: attempt %d no longer holds it (its lease ran out, and it was "
                    "queued again or ended); if another attempt has it, this one's result "
                    "will not be recorded",
                    self.job_id,
                    self.attempt,
                )
                return
