"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 19:53:36.582196
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "locks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_locks_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_locks_spec_hash"), ["spec_hash"], unique=False)

    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("content_key", sa.String(length=72), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("build", sa.String(length=255), nullable=False),
        sa.Column("build_number", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("subdir", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("url", "content_key", name="uq_packages_url_content"),
    )
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packages_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_packages_sha256"), ["sha256"], unique=False)

    op.create_table(
        "lock_packages",
        sa.Column("lock_id", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lock_id"],
            ["locks.id"],
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["packages.id"],
        ),
        sa.PrimaryKeyConstraint("lock_id", "target", "package_id"),
    )
    with op.batch_alter_table("lock_packages", schema=None) as batch_op:
        batch_op.create_index("ix_lock_packages_package", ["package_id"], unique=False)

    op.create_table(
        "lock_targets",
        sa.Column("lock_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("virtual_packages", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lock_id"],
            ["locks.id"],
        ),
        sa.PrimaryKeyConstraint("lock_id", "name"),
    )
    op.create_table(
        "solve_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("lock_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["lock_id"],
            ["locks.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key"),
    )
    with op.batch_alter_table("solve_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_solve_jobs_request_hash"), ["request_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_solve_jobs_spec_hash"), ["spec_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_solve_jobs_status"), ["status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("solve_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_solve_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_solve_jobs_spec_hash"))
        batch_op.drop_index(batch_op.f("ix_solve_jobs_request_hash"))

    op.drop_table("solve_jobs")
    op.drop_table("lock_targets")
    with op.batch_alter_table("lock_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_lock_packages_package")

    op.drop_table("lock_packages")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packages_sha256"))
        batch_op.drop_index(batch_op.f("ix_packages_name"))

    op.drop_table("packages")
    with op.batch_alter_table("locks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_locks_spec_hash"))
        batch_op.drop_index(batch_op.f("ix_locks_created_at"))

    op.drop_table("locks")
