"""PyPI packages in locks, and their archive state

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 20:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pypi_packages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_key", name="uq_pypi_packages_record_key"),
    )
    op.create_index("ix_pypi_packages_name", "pypi_packages", ["name"])
    op.create_index("ix_pypi_packages_sha256", "pypi_packages", ["sha256"])
    op.create_table(
        "lock_pypi_packages",
        sa.Column("lock_id", sa.String(length=64), sa.ForeignKey("locks.id"), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column(
            "pypi_package_id", sa.Integer(), sa.ForeignKey("pypi_packages.id"), nullable=False
        ),
        sa.PrimaryKeyConstraint("lock_id", "target", "pypi_package_id"),
    )
    op.create_index("ix_lock_pypi_packages_package", "lock_pypi_packages", ["pypi_package_id"])
    op.create_table(
        "pypi_archive_entries",
        sa.Column(
            "pypi_package_id", sa.Integer(), sa.ForeignKey("pypi_packages.id"), nullable=False
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "blob_sha256", sa.String(length=64), sa.ForeignKey("blobs.sha256"), nullable=True
        ),
        sa.Column("lease_owner", sa.String(length=96), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pypi_package_id"),
    )
    op.create_index("ix_pypi_archive_entries_blob", "pypi_archive_entries", ["blob_sha256"])
    with op.batch_alter_table("lock_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pypi_local", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lock_targets", schema=None) as batch_op:
        batch_op.drop_column("pypi_local")
    op.drop_table("pypi_archive_entries")
    op.drop_table("lock_pypi_packages")
    op.drop_table("pypi_packages")
