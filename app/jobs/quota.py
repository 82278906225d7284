"""How many solves one API token may have queued or running at once.

Counted at submission, so concurrent requests of one token may pass the limit by a few;
it bounds a runaway client, not an exact share.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import SolveJob
from app.errors import setting_name
from app.jobs.state import ACTIVE, find_fresh

QUOTA_FIELD = "max_jobs_per_token"


class JobQuotaExceeded(Exception):
    """The token has as many solves queued or running as it may (`limit`); say so, and when."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit


def check_job_quota(
    session: Session,
    token_id: int | None,
    token_name: str | None,
    request_hash: str,  # the request's dedupe key (app.jobs.state.dedupe_key)
    settings: Settings,
) -> None:
    """JobQuotaExceeded when the token has as many solves queued or running as it may.

    Nobody's requests (no token: auth is off) are not counted. A request identical to an
    active or fresh job is let through: it joins that job or reuses its result and adds no
    work.
    """
    if token_id is None:
        return
    active = session.scalar(
        select(func.count())
        .select_from(SolveJob)
        .where(SolveJob.token_id == token_id, SolveJob.status.in_(ACTIVE))
    )
    limit = settings.max_jobs_per_token
    if (active or 0) < limit:
        return
    shared = session.scalars(
        select(SolveJob.id).where(SolveJob.active_key == request_hash, SolveJob.status.in_(ACTIVE))
    )
    if shared.first() is not None or find_fresh(session, request_hash, settings.dedupe_window):
        return
    raise JobQuotaExceeded(
        f"token {token_name!r} has {active} solves queued or running; the limit is {limit} "
        f"({setting_name(QUOTA_FIELD)}). Retry when one of them has finished.",
        limit,
    )
