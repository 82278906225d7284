"""Sending tasks to the workers, by name. What a task acts on is already in the database.

A send may fail (the broker is restarting, a pooled connection went stale); it is retried
briefly, and when it still fails the work stays queued in the database, where the sweeper
(app/jobs/sweeper.py) finds it and sends it again.

With `CONDARCHIVE_INLINE_TASKS=true` a task runs in the sending process instead, through
the same function: the in-process test tier uses it to run the API without a broker.
"""

from __future__ import annotations

import logging
from typing import Any

from app.config import get_settings
from app.queue import names
from app.queue.celery_app import celery_app

log = logging.getLogger(__name__)

#: A short retry: enough to ride out a stale connection or a broker restarting, short
#: enough that a POST answers within a second or so when the broker is down.
SEND_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 0.5}


class QueueUnavailable(Exception):
    """The broker did not take the message; the work stays queued in the database."""


def send_task(name: str, *args: Any, retry: bool = True) -> None:
    """Send task `name` with `args` to the service's queue (or run it here, inline)."""
    settings = get_settings()
    if settings.inline_tasks:
        celery_app.loader.import_default_modules()  # workers/ registers the task names
        celery_app.tasks[name].apply(args=args, throw=True)
        return
    try:
        celery_app.send_task(
            name,
            args=list(args),
            queue=settings.archive_queue if name in names.ARCHIVE_QUEUE_TASKS else settings.queue,
            retry=retry,
            retry_policy=SEND_RETRY,
        )
    except Exception as exc:  # noqa: BLE001 - whatever the broker raises, it is unreachable
        raise QueueUnavailable(str(exc)) from exc


def try_send(name: str, *args: Any, retry: bool = True, what: str = "") -> bool:
    """:func:`send_task`, or False with a warning when the broker is down (the sweeper
    re-sends what the database still holds as queued). `what` names the work in that
    warning (default: the task name and its arguments)."""
    try:
        send_task(name, *args, retry=retry)
    except QueueUnavailable as exc:
        what = what or f"{name}{args}"
        log.warning("could not queue %s (%s); it stays queued in the database", what, exc)
        return False
    return True


def enqueue_solve(job_id: str) -> bool:
    """Send the job id; False when the broker is unreachable (the sweeper re-sends it)."""
    return try_send(names.SOLVE, job_id, what=f"job {job_id}")


def send_archive_task(lock_id: str) -> bool:
    """Send a lock's archive run; False when the broker is unreachable."""
    return try_send(names.ARCHIVE_LOCK, lock_id, retry=False, what=f"the archive of lock {lock_id}")


def queue_depth() -> int | None:
    """Messages waiting in our broker queue, or None when the broker cannot say.

    Waiting means not yet delivered: a message a worker holds (prefetched or running)
    is not counted. The sweeper compares this with the jobs the database says are
    queued, so that a long, healthy queue is not sent a second copy of every job.
    """
    from kombu.exceptions import ChannelError

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
