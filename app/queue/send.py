"""Sending job ids to the workers. The job is already in the database when this runs.

A send may fail (the broker is restarting, a pooled connection went stale); it is
retried briefly, and when it still fails the job stays queued in the database, where
the sweeper (app/jobs/sweeper.py) finds it and sends it again.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

SOLVE_TASK = "condarchive.solve"

#: A short retry: enough to ride out a stale connection or a broker restarting, short
#: enough that a POST answers within a second or so when the broker is down.
SEND_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 0.5}


def enqueue_solve(job_id: str) -> bool:
    """Send the job id; False when the broker is unreachable (the sweeper re-sends it)."""
    from app.config import get_settings
    from app.queue.celery_app import celery_app

    try:
        celery_app.send_task(
            SOLVE_TASK,
            args=[job_id],
            queue=get_settings().queue,
            retry=True,
            retry_policy=SEND_RETRY,
        )
    except Exception as exc:  # noqa: BLE001 - the broker may be down; the job is safe in the DB
        log.warning("could not queue job %s (%s); it stays queued in the database", job_id, exc)
        return False
    return True


def queue_depth() -> int | None:
    """Messages waiting in our broker queue, or None when the broker cannot say.

    Waiting means not yet delivered: a message a worker holds (prefetched or running)
    is not counted. The sweeper compares this with the jobs the database says are
    queued, so that a long, healthy queue is not sent a second copy of every job.
    """
    from kombu.exceptions import ChannelError

    from app.config import get_settings
    from app.queue.celery_app import celery_app

    queue = get_settings().queue
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            channel = connection.default_channel
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:  # Redis has no key for an empty queue: nothing is waiting
                return 0
    except Exception as exc:  # noqa: BLE001 - unknown is an answer: the sweeper re-sends
        log.warning("could not read the length of queue %s: %s", queue, exc)
        return None
