"""lock canonical form v2: per-lock package metadata, requests kept per request, id aliases

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

* ``packages`` rows are named by ``record_key`` (the sha256 of the package's canonical
  form v2) instead of being unique per (url, content_key): the same file locked with other
  metadata is another row, so no lock renders another lock's fields.
* every lock gets its v2 id (channels, targets, every field of every package); the old id
  stays in ``lock_aliases`` and keeps resolving. Jobs and lock archives point at the new id.
* ``lock_requests`` keeps what each request (solve job or import) asked; a lock's ``spec``
  keeps only its channels.

Self-contained on purpose: the canonical form is copied here, not imported from app code
that may change after this revision.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

EXTRA_FIELDS = ("noarch", "timestamp", "license", "track_features")
FIELDS = (
    "name",
    "version",
    "build",
    "build_number",
    "channel",
    "subdir",
    "url",
    "filename",
    "sha256",
    "md5",
    "size",
)


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256_of(obj: Any) -> str:
    return hashlib.sha256(_canonical_json(obj).encode()).hexdigest()


def _package_canonical(row: Any) -> dict[str, Any]:
    """The package's canonical form v2 (app/locks/store.py as of this revision)."""
    record = row.record or {}
    canonical = {name: getattr(row, name) for name in FIELDS}
    canonical["depends"] = list(record.get("depends") or [])
    canonical["constrains"] = list(record.get("constrains") or [])
    canonical["extras"] = {
        key: record[key] for key in EXTRA_FIELDS if record.get(key) not in (None, "", [])
    }
    return canonical


def _lock_id(
    channels: list[str],
    targets: list[Any],
    packages: dict[str, list[dict[str, Any]]],
) -> str:
    return _sha256_of(
        {
            "version": 2,
            "channels": list(channels),
            "targets": {
                t.name: {
                    "platform": t.platform,
                    "virtual_packages": sorted(t.virtual_packages or []),
                    "packages": sorted(
                        packages.get(t.name, []), key=lambda p: (p["url"], _canonical_json(p))
                    ),
                }
                for t in targets
            },
        }
    )


# Tables as this revision sees them (not the app's models, which may change).
_packages = sa.table(
    "packages",
    sa.column("id", sa.Integer),
    sa.column("record_key", sa.String),
    sa.column("record", sa.JSON),
    *(sa.column(name) for name in FIELDS),
)
_locks = sa.table(
    "locks",
    sa.column("id", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("spec", sa.JSON),
    sa.column("spec_hash", sa.String),
    sa.column("provenance", sa.JSON),
)
_targets = sa.table(
    "lock_targets",
    sa.column("lock_id", sa.String),
    sa.column("name", sa.String),
    sa.column("platform", sa.String),
    sa.column("virtual_packages", sa.JSON),
)
_lock_packages = sa.table(
    "lock_packages",
    sa.column("lock_id", sa.String),
    sa.column("target", sa.String),
    sa.column("package_id", sa.Integer),
)
_jobs = sa.table(
    "solve_jobs",
    sa.column("id", sa.String),
    sa.column("lock_id", sa.String),
    sa.column("request", sa.JSON),
    sa.column("spec_hash", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("finished_at", sa.DateTime(timezone=True)),
)
_archives = sa.table("lock_archives", sa.column("lock_id", sa.String))
_aliases = sa.table("lock_aliases", sa.column("old_id", sa.String), sa.column("new_id", sa.String))
_requests = sa.table(
    "lock_requests",
    sa.column("lock_id", sa.String),
    sa.column("request_key", sa.String),
    sa.column("kind", sa.String),
    sa.column("job_id", sa.String),
    sa.column("name", sa.Text),
    sa.column("spec", sa.JSON),
    sa.column("spec_hash", sa.String),
    sa.column("submitted", sa.JSON),
    sa.column("provenance", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "lock_aliases",
        sa.Column("old_id", sa.String(length=64), nullable=False),
        sa.Column("new_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["new_id"], ["locks.id"]),
        sa.PrimaryKeyConstraint("old_id"),
    )
    with op.batch_alter_table("lock_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lock_aliases_new_id"), ["new_id"], unique=False)
    op.create_table(
        "lock_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lock_id", sa.String(length=64), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("submitted", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["solve_jobs.id"]),
        sa.ForeignKeyConstraint(["lock_id"], ["locks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lock_id", "request_key", name="uq_lock_requests_key"),
    )
    with op.batch_alter_table("lock_requests", schema=None) as batch_op:
        batch_op.create_index("ix_lock_requests_lock", ["lock_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lock_requests_job_id"), ["job_id"], unique=False)

    connection = op.get_bind()
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_key", sa.String(length=64), nullable=True))

    _key_packages(connection)
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.alter_column("record_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_packages_url_content", type_="unique")
        batch_op.create_unique_constraint("uq_packages_record_key", ["record_key"])
        batch_op.create_index("ix_packages_url_content", ["url", "content_key"], unique=False)
    _rename_locks(connection)
    _check_foreign_keys(connection)


def _check_foreign_keys(connection: sa.Connection) -> None:
    """SQLite runs migrations with foreign keys off (migrations/env.py): check that every
    row moved here still references one that exists."""
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"0004 left rows referencing missing ones: {broken[:10]}")


def _key_packages(connection: sa.Connection) -> None:
    """Each existing row gets the key of what it holds (its rows were unique per url and
    content already, so the keys are unique too)."""
    rows = connection.execute(sa.select(_packages)).all()
    for row in rows:
        connection.execute(
            _packages.update()
            .where(_packages.c.id == row.id)
            .values(record_key=_sha256_of(_package_canonical(row)))
        )


def _rename_locks(connection: sa.Connection) -> None:
    """Give every lock its v2 id; keep the old one as an alias; move each request's spec
    from the lock to `lock_requests`."""
    canonical_of = {
        row.id: _package_canonical(row) for row in connection.execute(sa.select(_packages))
    }
    locks = connection.execute(sa.select(_locks).order_by(_locks.c.id)).all()
    for lock in locks:
        targets = connection.execute(
            sa.select(_targets).where(_targets.c.lock_id == lock.id).order_by(_targets.c.name)
        ).all()
        links = connection.execute(
            sa.select(_lock_packages).where(_lock_packages.c.lock_id == lock.id)
        ).all()
        packages: dict[str, list[dict[str, Any]]] = {}
        for link in links:
            packages.setdefault(link.target, []).append(canonical_of[link.package_id])
        spec = dict(lock.spec or {})
        channels = list(spec.get("channels") or [])
        new_id = _lock_id(channels, targets, packages)
        lock_spec = {"channels": channels}
        if new_id != lock.id:
            connection.execute(
                _locks.insert().values(
                    id=new_id,
                    created_at=lock.created_at,
                    spec=lock_spec,
                    spec_hash=_sha256_of(lock_spec),
                    provenance=lock.provenance,
                )
            )
            for target in targets:
                connection.execute(
                    _targets.insert().values(
                        lock_id=new_id,
                        name=target.name,
                        platform=target.platform,
                        virtual_packages=sorted(target.virtual_packages or []),
                    )
                )
            for link in links:
                connection.execute(
                    _lock_packages.insert().values(
                        lock_id=new_id, target=link.target, package_id=link.package_id
                    )
                )
            connection.execute(
                _jobs.update().where(_jobs.c.lock_id == lock.id).values(lock_id=new_id)
            )
            connection.execute(
                _archives.update().where(_archives.c.lock_id == lock.id).values(lock_id=new_id)
            )
            connection.execute(_aliases.insert().values(old_id=lock.id, new_id=new_id))
        _move_requests(connection, lock, new_id, spec)
        if new_id != lock.id:
            connection.execute(_lock_packages.delete().where(_lock_packages.c.lock_id == lock.id))
            connection.execute(_targets.delete().where(_targets.c.lock_id == lock.id))
            connection.execute(_locks.delete().where(_locks.c.id == lock.id))
        else:  # pragma: no cover - a v1 id cannot equal a v2 one
            connection.execute(
                _locks.update()
                .where(_locks.c.id == lock.id)
                .values(spec=lock_spec, spec_hash=_sha256_of(lock_spec))
            )


def _move_requests(connection: sa.Connection, lock: Any, new_id: str, spec: dict[str, Any]) -> None:
    """One request row per job that produced the lock, and one for the spec the lock held
    when no job did (an import, or a job since deleted)."""
    provenance = lock.provenance or {}
    jobs = connection.execute(
        sa.select(_jobs).where(_jobs.c.lock_id == new_id).order_by(_jobs.c.created_at)
    ).all()
    for job in jobs:
        request = job.request or {}
        connection.execute(
            _requests.insert().values(
                lock_id=new_id,
                request_key=job.id,
                kind="solve",
                job_id=job.id,
                name=request.get("name"),
                spec=request.get("spec") or {},
                spec_hash=job.spec_hash,
                submitted=request.get("submitted") or {},
                provenance=provenance,
                created_at=job.finished_at or job.created_at,
            )
        )
    imported = "imported" in provenance
    if jobs and not imported:
        return
    submitted = spec.get("submitted") or {}
    asked = {
        "channels": list(spec.get("channels") or []),
        "dependencies": spec.get("dependencies") or [],
    }
    connection.execute(
        _requests.insert().values(
            lock_id=new_id,
            request_key=_sha256_of(submitted),
            kind="import" if imported else "solve",
            job_id=None,
            name=spec.get("name"),
            spec=asked,
            spec_hash=lock.spec_hash,
            submitted=submitted,
            provenance=provenance,
            created_at=lock.created_at,
        )
    )


def downgrade() -> None:
    """Structure only: locks keep their v2 ids (a v1 id cannot be told from what is
    stored), and the requests' specs are dropped with `lock_requests`."""
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index("ix_packages_url_content")
        batch_op.drop_constraint("uq_packages_record_key", type_="unique")
        batch_op.create_unique_constraint("uq_packages_url_content", ["url", "content_key"])
        batch_op.drop_column("record_key")
    with op.batch_alter_table("lock_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lock_requests_job_id"))
        batch_op.drop_index("ix_lock_requests_lock")
    op.drop_table("lock_requests")
    with op.batch_alter_table("lock_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lock_aliases_new_id"))
    op.drop_table("lock_aliases")
