"""POST and GET solve jobs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Response

from app.config import Settings
from app.core.pypi_spec import PyPIPolicy
from app.core.specs import SolveRequest, build_spec, parse_environment_platforms
from app.core.targets import parse_targets
from app.errors import InputError
from app.jobs.quota import JobQuotaExceeded, check_job_quota
from app.jobs.state import dedupe_key, find_job, job_view, submit
from app.queue.send import enqueue_solve
from app.web.auth import SolveCaller
from app.web.deps import SessionDep, SettingsDep
from app.web.limits import check_solve_limits, parse_environment, too_many_jobs
from app.web.responses import AUTH, BODY, NOT_FOUND, QUOTA
from app.web.schemas import DEFAULT_TARGETS, SolveBody, SolveView

router = APIRouter(prefix="/api/v1/solves", tags=["solves"])


def build_request(body: SolveBody, settings: Settings) -> SolveRequest:
    # environment.yml is parsed here, once, within its limits; every later step reads that.
    environment = (
        None if body.environment is None else parse_environment(body.environment, settings)
    )
    check_solve_limits(body, environment, settings)  # sizes first, before anything further
    spec = build_spec(
        environment=environment,
        channels=body.channels,
        dependencies=body.dependencies,
        allowed_channels=settings.allowed_channel_entries,
        channel_alias=settings.channel_alias,
        max_channels=settings.max_channels,
        pypi_dependencies=body.pypi_dependencies,
        pypi_indexes=body.pypi_indexes,
        pypi_policy=PyPIPolicy.of(settings),
    )
    raw_targets: list[Any]
    if body.targets is not None:
        raw_targets = [
            t if isinstance(t, str) else t.model_dump(exclude_none=True) for t in body.targets
        ]
    else:
        raw_targets = parse_environment_platforms(environment) or list(DEFAULT_TARGETS)
    targets = parse_targets(raw_targets, ["body", "targets"])
    if metadata := body.metadata():
        # Kept with what was submitted (so with the job and the lock's request row), and
        # so a request that cites differently gets its own job; not in the request hash.
        spec = replace(spec, submitted={**spec.submitted, "metadata": metadata})
    return SolveRequest(
        spec=spec,
        targets=tuple(targets),
        exclude_newer=body.exclude_newer,
        channel_priority=body.channel_priority,
    )


@router.post(
    "",
    status_code=202,
    response_model=SolveView,
    responses={
        200: {"model": SolveView, "description": "an identical request already solved"},
        **AUTH,
        **BODY,
        **QUOTA,
    },
)
def create_solve(
    body: SolveBody,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    caller: SolveCaller,
) -> dict[str, Any]:
    try:
        request = build_request(body, settings)
    except InputError as exc:
        raise HTTPException(status_code=422, detail=[exc.to_detail()]) from exc
    try:
        check_job_quota(session, caller.token_id, caller.name, dedupe_key(request), settings)
    except JobQuotaExceeded as exc:
        raise too_many_jobs(exc) from exc
    job, created = submit(session, request, settings.dedupe_window, caller.token_id)
    if created:
        enqueue_solve(job.id)
    if job.status == "succeeded":
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/solves/{job.id}"
    return job_view(job, settings.base_url)


@router.get("/{job_id}", response_model=SolveView, responses=NOT_FOUND)
def get_solve(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    job = find_job(session, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no solve job with id {job_id!r}")
    return job_view(job, settings.base_url)
