"""Ask for a lock's archive and watch it: per-target progress, per-package state and reason."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel

from app.archive.quota import check_archive_size
from app.archive.state import lock_bytes, request_archive
from app.archive.views import archive_channels, archive_status, latest_verify_report
from app.errors import InputError
from app.locks.store import find_lock
from app.web.auth import SolveCaller
from app.web.deps import SessionDep, SettingsDep
from app.web.responses import AUTH, NOT_FOUND, ErrorView, error

router = APIRouter(prefix="/api/v1", tags=["archive"])

PackageState = Literal["archived", "failed", "pending", "not_requested"]


class ArchivedPackageView(BaseModel):
    name: str
    version: str
    build: str
    subdir: str
    filename: str
    url: str
    sha256: str | None
    md5: str
    size: int
    state: PackageState
    reason: str | None = None
    attempts: int
    archived_at: str | None = None
    blob_sha256: str | None = None
    blob_md5: str | None = None  # computed from the stored bytes
    blob_size: int | None = None
    # False for an archived file whose record named no sha256 or md5 to check it against.
    verified: bool = False
    archive_url: str | None = None  # by content: exactly the blob_sha256 bytes


class Counts(BaseModel):
    total: int
    archived: int
    failed: int
    pending: int
    not_requested: int
    unverified: int = 0  # archived, but with no hash in the record to check the bytes by


class ArchivedPyPIView(BaseModel):
    name: str
    version: str
    kind: str
    filename: str
    url: str
    sha256: str
    size: int
    state: PackageState
    reason: str | None = None
    attempts: int
    archived_at: str | None = None
    blob_sha256: str | None = None
    blob_size: int | None = None
    archive_url: str | None = None  # /pypi/files/{sha256}/{filename}


class ArchiveTargetView(Counts):
    platform: str
    status: str
    bytes_total: int
    bytes_archived: int
    packages: list[ArchivedPackageView]
    pypi: Counts | None = None  # the target's PyPI files (when it has any)
    pypi_packages: list[ArchivedPyPIView] = []


class ArchiveView(BaseModel):
    lock_id: str
    status: Literal["archived", "failed", "queued", "running", "pending", "not_requested"]
    requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    runs: int
    summary: Counts  # conda packages
    pypi: Counts | None = None  # PyPI files (both count in `status`)
    channels: dict[str, str]  # upstream channel URL -> archive channel URL
    targets: dict[str, ArchiveTargetView]


@router.post(
    "/locks/{lock_id}/archive",
    status_code=202,
    response_model=ArchiveView,
    responses={
        200: {"model": ArchiveView, "description": "every package is archived already"},
        404: {"model": ErrorView, "description": "no such lock"},
        **AUTH,
    },
)
def start_archive(
    lock_id: str,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _caller: SolveCaller,
) -> dict[str, Any]:
    """Archive every package of the lock; failed ones are tried again."""
    lock = find_lock(session, lock_id)
    if lock is None:
        raise HTTPException(status_code=404, detail=f"no lock with id {lock_id!r}")
    lock_id = lock.id  # an id of an earlier canonical form names the lock it became
    status = archive_status(session, lock_id, settings.base_url)
    if status["status"] == "archived":
        response.status_code = 200
        return status
    try:
        check_archive_size(lock_bytes(session, lock_id), settings)
    except InputError as exc:
        raise HTTPException(status_code=422, detail=[exc.to_detail()]) from exc
    request_archive(session, lock_id, retry_failed=True)
    response.headers["Location"] = f"/api/v1/locks/{lock_id}/archive"
    return archive_status(session, lock_id, settings.base_url)


@router.get("/locks/{lock_id}/archive", response_model=ArchiveView, responses=NOT_FOUND)
def get_archive(lock_id: str, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    lock = find_lock(session, lock_id)
    if lock is None:
        raise HTTPException(status_code=404, detail=f"no lock with id {lock_id!r}")
    return archive_status(session, lock.id, settings.base_url)


@router.get("/archive/channels")
def list_archive_channels(session: SessionDep, settings: SettingsDep) -> list[dict[str, Any]]:
    """The archive channels (named from their upstream URL; see app/archive/naming.py)."""
    return archive_channels(session, settings.base_url)


@router.get("/archive/verify", responses={404: error("verify has not run yet")})
def get_verify_report(session: SessionDep) -> dict[str, Any]:
    """The newest `condarchive verify` report (from the CLI or the beat schedule)."""
    report = latest_verify_report(session)
    if report is None:
        raise HTTPException(status_code=404, detail="verify has not run yet")
    return report
