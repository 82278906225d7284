"""ORM tables. Jobs are mutable; locks, their targets and package files are written once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class SolveJob(Base):
    """One request to solve a spec for some targets. The database is the queue's truth."""

    __tablename__ = "solve_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), index=True)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The request's dedupe key (app/jobs/state.py: request hash, name and submitted text)
    # while the job is queued, running, or succeeded and within the
    # dedupe window (released by the next identical request after it); NULL once failed.
    # A unique index on it makes N identical concurrent POSTs share one job.
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lock_id: Mapped[str | None] = mapped_column(ForeignKey("locks.id"), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The API token that submitted the job: bounds its concurrent solves.
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id"), index=True, nullable=True
    )


class Lock(Base):
    """An immutable solve result; its id is the sha256 of its canonical form.

    `spec` holds only what the id covers of it (``{"channels": [...]}``) and `spec_hash`
    its hash; what each request asked is in `lock_requests`. `provenance` is how the
    lock was first made.
    """

    __tablename__ = "locks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)

    targets: Mapped[list[LockTarget]] = relationship(
        back_populates="lock", order_by="LockTarget.name", lazy="selectin"
    )


class LockTarget(Base):
    __tablename__ = "lock_targets"

    lock_id: Mapped[str] = mapped_column(ForeignKey("locks.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    virtual_packages: Mapped[list[Any]] = mapped_column(JSON)
    # The pip lines that are the researcher's own code (`-e .`, paths, `-r` files): in the
    # lock as "local, not archived". NULL (read as none) for locks without a PyPI part.
    pypi_local: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)

    lock: Mapped[Lock] = relationship(back_populates="targets")


class PackageFile(Base):
    """One package file as one lock resolved it: its URL, hashes and metadata.

    Content-addressed by `record_key` (the sha256 of the package's canonical form, see
    app/locks/store.py) and written once: the same file (url, sha256) locked with other
    metadata (a patched or a hostile repodata) is another row, so no lock renders another
    lock's fields. The archive keeps the file's bytes once, by sha256.
    """

    __tablename__ = "packages"
    __table_args__ = (
        UniqueConstraint("record_key", name="uq_packages_record_key"),
        Index("ix_packages_url_content", "url", "content_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    # sha256, or "md5:<md5>" for the old records that carry no sha256: a channel may
    # replace a file under the same URL, and a lock must keep the bytes it resolved.
    content_key: Mapped[str] = mapped_column(String(72))
    record_key: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(255))
    build: Mapped[str] = mapped_column(String(255))
    build_number: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(Text)
    subdir: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # the full repodata record


class LockAlias(Base):
    """An id a lock had under an earlier canonical form (migration 0004): it still resolves."""

    __tablename__ = "lock_aliases"

    old_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    new_id: Mapped[str] = mapped_column(ForeignKey("locks.id"), index=True)


class LockRequest(Base):
    """One request that produced a lock (a solve job or an import), with what it asked.

    What was requested belongs here, not to the lock: two requests reaching one lock each
    keep their own name, submitted text and provenance. Written once per (lock, request).
    """

    __tablename__ = "lock_requests"
    __table_args__ = (
        UniqueConstraint("lock_id", "request_key", name="uq_lock_requests_key"),
        Index("ix_lock_requests_lock", "lock_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lock_id: Mapped[str] = mapped_column(ForeignKey("locks.id"))
    request_key: Mapped[str] = mapped_column(String(64))  # the job id, or the import's hash
    kind: Mapped[str] = mapped_column(String(16))  # solve | import
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("solve_jobs.id"), index=True, nullable=True
    )
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    submitted: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LockPackage(Base):
    __tablename__ = "lock_packages"
    __table_args__ = (Index("ix_lock_packages_package", "package_id"),)

    lock_id: Mapped[str] = mapped_column(ForeignKey("locks.id"), primary_key=True)
    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"), primary_key=True)

    package: Mapped[PackageFile] = relationship(lazy="joined")


class PyPIFile(Base):
    """One locked PyPI file (a wheel, an sdist, or a VCS commit's source archive).

    Content-addressed like :class:`PackageFile`: `record_key` is the sha256 of the
    package's canonical form (app/locks/pypi_records.py), which `record` holds whole.
    """

    __tablename__ = "pypi_packages"
    __table_args__ = (UniqueConstraint("record_key", name="uq_pypi_packages_record_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class LockPyPIPackage(Base):
    __tablename__ = "lock_pypi_packages"
    __table_args__ = (Index("ix_lock_pypi_packages_package", "pypi_package_id"),)

    lock_id: Mapped[str] = mapped_column(ForeignKey("locks.id"), primary_key=True)
    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    pypi_package_id: Mapped[int] = mapped_column(ForeignKey("pypi_packages.id"), primary_key=True)

    package: Mapped[PyPIFile] = relationship(lazy="joined")


# --- Archive -----------------------------------------------------------------------------


class Blob(Base):
    """A verified file in the blob store. The row is written once, after the file is in place."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArchiveEntry(Base):
    """Whether one package file is archived: pending -> archived | failed (with the reason).

    `channel_name` is the archive channel the file is served under (see app/archive/naming.py);
    a worker holds a pending entry by its lease, so two workers never download one file.
    """

    __tablename__ = "archive_entries"
    __table_args__ = (
        Index("ix_archive_entries_listing", "channel_name", "subdir", "state"),
        Index("ix_archive_entries_blob", "blob_sha256"),
    )

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    channel_name: Mapped[str] = mapped_column(String(160))
    subdir: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(16), default="lock")  # lock | proxy
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)

    package: Mapped[PackageFile] = relationship(lazy="joined")


class PyPIArchiveEntry(Base):
    """Whether one PyPI file is archived: pending -> archived | failed (with the reason)."""

    __tablename__ = "pypi_archive_entries"
    __table_args__ = (Index("ix_pypi_archive_entries_blob", "blob_sha256"),)

    pypi_package_id: Mapped[int] = mapped_column(ForeignKey("pypi_packages.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(nullable=True)

    package: Mapped[PyPIFile] = relationship(lazy="joined")


class LockArchive(Base):
    """A lock's archive request: queued -> running -> done (the entries say how it went)."""

    __tablename__ = "lock_archives"

    lock_id: Mapped[str] = mapped_column(ForeignKey("locks.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    runs: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class VerifyReport(Base):
    """One `condarchive verify` run: re-hashed blobs and upstream drift. Written once."""

    __tablename__ = "verify_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(default=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


# --- Auth --------------------------------------------------------------------------------


class ApiToken(Base):
    """An API token: only its sha256 is kept, so the table does not leak usable tokens.

    A revoked token keeps its row (and name), so `token list` shows who had access.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # solve | import | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
