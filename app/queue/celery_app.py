"""The Celery application. Messages carry only a job id; the database holds the job."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from app.config import get_settings
from app.queue import names
from app.queue.broker import ALIAS
from app.queue.liveness import WorkerBeat


def make_celery() -> Celery:
    settings = get_settings()
    broker = settings.resolved_broker_url
    if broker.startswith(f"{ALIAS}+"):
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("condarchive", broker=broker, include=["workers.tasks", "workers.archive_tasks"])
    transport_options: dict[str, object] = {}
    if broker.startswith(("redis://", "rediss://")):
        # Longer than any solve: an unacked message is redelivered only after this.
        transport_options = {"visibility_timeout": int(settings.solve_timeout) * 2 + 60}
    app.conf.update(
        task_default_queue=settings.queue,
        task_routes={name: {"queue": settings.archive_queue} for name in names.ARCHIVE_QUEUE_TASKS},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options,
        worker_hijack_root_logger=False,
        # `condarchive beat` (or `celery -A app.queue.celery_app beat`) sends these.
        beat_schedule={
            "verify-archive": {
                "task": names.VERIFY_ARCHIVE,
                "schedule": settings.verify_interval,
            },
            "resend-lost-archives": {
                "task": names.ARCHIVE_SWEEP,
                "schedule": max(settings.archive_lease, 60.0),
            },
        },
    )
    return app


celery_app = make_celery()
_beat: WorkerBeat | None = None


@worker_ready.connect
def _start_beat(sender: Any, **_: Any) -> None:
    """Embedded mode: say this worker is alive, and on which queues (app/queue/liveness.py)."""
    global _beat
    settings = get_settings()
    if settings.embedded and _beat is None:
        queues = sorted(sender.app.amqp.queues.consume_from or [settings.queue])
        _beat = WorkerBeat(settings, sender.hostname, queues)


@worker_shutdown.connect
def _stop_beat(**_: Any) -> None:
    if _beat is not None:
        _beat.stop()
