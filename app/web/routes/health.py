"""Liveness and readiness.

200 whenever the API and its database answer. In embedded mode the body also says
whether the workers `serve` runs are alive (app/queue/liveness.py): ``"status":
"degraded"`` with a ``detail`` once a queue has had no live worker for
CONDARCHIVE_WORKER_STALE_AFTER seconds, since new jobs then wait. Still 200: the API
serves reads and takes jobs meanwhile, and `serve` restarts its workers itself, so a load
balancer or orchestrator should not take the API away for it; monitors read the status.
"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from app.queue.liveness import liveness
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health")
def health(session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    body = {"status": "ok", "mode": "embedded" if settings.embedded else "distributed"}
    if settings.embedded and not settings.inline_tasks:
        missing = liveness(settings, [settings.queue, settings.archive_queue]).missing
        if missing:
            body["status"] = "degraded"
            body["detail"] = (
                f"no worker seen on queue {', '.join(missing)} for "
                f"{settings.worker_stale_after:g} s; new jobs wait until one runs "
                "(`condarchive serve` restarts its own; with --no-worker, run "
                "`condarchive worker`)"
            )
    return body
