"""cell health: what the cell watchers last saw of each cell (restarts, failing, idle)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cell_health",
        sa.Column("cell_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("recent_restarts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("idle_since", controlplane.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("cell_id", name=op.f("pk_cell_health")),
    )


def downgrade() -> None:
    op.drop_table("cell_health")
