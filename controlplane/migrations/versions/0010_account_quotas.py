"""per-account quotas set by the operator

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_quotas",
        sa.Column("account_id", sa.String(16), nullable=False),
        sa.Column("quota", sa.String(32), nullable=False),
        sa.Column("maximum", sa.Integer(), nullable=False),
        sa.Column("created_at", controlplane.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", controlplane.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_account_quotas_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("account_id", "quota", name="pk_account_quotas"),
    )
    # Counting an account's non-terminal operations (the concurrent-operations quota).
    op.create_index(
        "ix_async_operations_account_id_state", "async_operations", ["account_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_async_operations_account_id_state", table_name="async_operations")
    op.drop_table("account_quotas")
