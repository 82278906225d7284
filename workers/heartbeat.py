"""A running job's heartbeat: renews its lease while the worker is alive.

The lease (CONDARCHIVE_JOB_LEASE) is how the rest of the system tells a slow job from a
dead worker: a worker killed mid-solve stops renewing it, and once it runs out the
sweeper (app/sweeper.py) gives the job to another worker. The beat runs in its own
thread with its own database session, so it keeps going while the solver is busy, and
it renews only the attempt it was started for (app/jobs.py: the attempt is the fencing
token), so a worker whose job was taken over learns it and stops renewing.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from app.db import session_scope
from app.jobs import heartbeat

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(job_id, attempt, lease):` renews the job's lease every lease/4 s."""

    def __init__(self, job_id: str, attempt: int, lease: float) -> None:
        self.job_id, self.attempt = job_id, attempt
        self.interval = max(lease / 4, 0.2)
        self.lost = False  # True once the job is no longer this attempt's
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True
        )

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
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with session_scope() as session:
                    alive = heartbeat(session, self.job_id, self.attempt)
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
