"""api tokens, and the token that submitted each solve job

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:37:21.993992
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("solve_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_solve_jobs_token_id"), ["token_id"], unique=False)
        batch_op.create_foreign_key("fk_solve_jobs_token_id", "api_tokens", ["token_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("solve_jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_solve_jobs_token_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_solve_jobs_token_id"))
        batch_op.drop_column("token_id")
    op.drop_table("api_tokens")
