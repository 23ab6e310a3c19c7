"""Service placement: assignments, each worker's last container and Docker reports, and
whether an admin trusts it with services that handle personal data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("containers", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("docker", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(
            sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "assignments",
        sa.Column("worker_id", sa.String(36), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("assigned_at", sa.Float(), nullable=False),
        sa.Column("unplaceable_since", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name="fk_assignments_worker_id_workers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("worker_id", "service", name="pk_assignments"),
    )
    op.create_index("ix_assignments_service", "assignments", ["service"])


def downgrade() -> None:
    op.drop_index("ix_assignments_service", table_name="assignments")
    op.drop_table("assignments")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("trusted")
        batch.drop_column("docker")
        batch.drop_column("containers")
