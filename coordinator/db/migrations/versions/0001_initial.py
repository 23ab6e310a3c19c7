"""The worker registry.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("agent_version", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_paused", sa.Boolean(), nullable=False),
        sa.Column("drained", sa.Boolean(), nullable=False),
        sa.Column("current_load", sa.Float(), nullable=False),
        sa.Column("reported_status", sa.String(256), nullable=True),
        sa.Column("registered_at", sa.Float(), nullable=False),
        sa.Column("last_heartbeat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        sa.UniqueConstraint("token_hash", name="uq_workers_token_hash"),
    )
    op.create_index("ix_workers_status_last_heartbeat", "workers", ["status", "last_heartbeat"])


def downgrade() -> None:
    op.drop_index("ix_workers_status_last_heartbeat", table_name="workers")
    op.drop_table("workers")
