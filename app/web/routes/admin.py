"""Admin-only routes: delete a failed job, re-run verification, read the proxy configuration.

Each needs a token with scope ``admin`` when CONDARCHIVE_AUTH=token; with auth off they
are as open as the rest of the service (the embedded default, on 127.0.0.1).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel

from app.jobs.state import find_job
from app.queue import names
from app.queue.send import QueueUnavailable, send_task
from app.web.auth import AdminCaller
from app.web.deps import SessionDep, SettingsDep
from app.web.responses import AUTH, error

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["admin"])


class VerifyQueued(BaseModel):
    status: str
    links: dict[str, str]


class ProxyChannel(BaseModel):
    name: str
    upstream: str
    url: str


class ProxyConfig(BaseModel):
    channels: list[ProxyChannel]
    repodata_ttl: float


@router.delete(
    "/solves/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        404: error("no such job"),
        409: error("the job has not failed; only failed jobs are deleted"),
        **AUTH,
    },
)
def delete_failed_job(job_id: str, session: SessionDep, caller: AdminCaller) -> Response:
    """Delete a failed job, so an identical request is solved afresh rather than shown
    the old failure. Jobs that succeeded stay: their lock's provenance points at them."""
    job = find_job(session, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no solve job with id {job_id!r}")
    if job.status != "failed":
        raise HTTPException(
            status_code=409,
            detail=f"solve job {job_id} is {job.status}; only failed jobs can be deleted",
        )
    session.delete(job)
    session.commit()
    log.info("solve job %s deleted by token %r", job_id, caller.name)
    return Response(status_code=204)


@router.post(
    "/archive/verify",
    status_code=202,
    response_model=VerifyQueued,
    responses={503: error("the queue is unreachable"), **AUTH},
)
def rerun_verify(settings: SettingsDep, _caller: AdminCaller) -> dict[str, Any]:
    """Queue a `verify` run (re-hash every blob, compare with upstream) on a worker; its
    report replaces the newest one at GET /api/v1/archive/verify when done."""
    try:
        send_task(names.VERIFY_ARCHIVE, retry=False)
    except QueueUnavailable as exc:
        raise HTTPException(
            status_code=503,
            detail=f"could not queue the verify run: {exc}",
            headers={"Retry-After": "5"},
        ) from exc
    return {
        "status": "queued",
        "links": {"report": f"{settings.base_url}/api/v1/archive/verify"},
    }


@router.get("/admin/proxy", response_model=ProxyConfig, responses=AUTH)
def proxy_config(settings: SettingsDep, _caller: AdminCaller) -> dict[str, Any]:
    """The pull-through proxy channels (CONDARCHIVE_PROXY_CHANNELS): name, upstream, URL here."""
    return {
        "channels": [
            {"name": name, "upstream": upstream, "url": f"{settings.base_url}/channels/{name}"}
            for name, upstream in sorted(settings.proxy_channel_map.items())
        ],
        "repodata_ttl": settings.proxy_repodata_ttl,
    }
