"""usage metering: hourly usage records, per-series counter cursors, per-cell counter totals

Revision ID: 0006_usage
Revises: 0001
Create Date: 2026-11-24 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0006_usage"
down_revision = "0001"
branch_labels = None
depends_on = None


def _datetime(name: str) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=False)


def _timestamps() -> list[sa.Column[object]]:
    return [_datetime("created_at"), _datetime("updated_at")]


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        _datetime("hour_start"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
        sa.UniqueConstraint(
            "namespace_id", "hour_start", "kind", name=op.f("uq_usage_records_namespace_id")
        ),
    )
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_usage_records_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_usage_records_hour_start"), ["hour_start"], unique=False
        )
    op.create_table(
        "usage_cursors",
        sa.Column("cell_id", sa.String(length=128), nullable=False),
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("action_type", sa.String(length=128), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint(
            "cell_id", "namespace_id", "action_type", name=op.f("pk_usage_cursors")
        ),
    )
    op.create_table(
        "usage_sources",
        sa.Column("cell_id", sa.String(length=128), nullable=False),
        sa.Column("counter_total", sa.BigInteger(), nullable=False),
        _datetime("scraped_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("cell_id", name=op.f("pk_usage_sources")),
    )


def downgrade() -> None:
    op.drop_table("usage_sources")
    op.drop_table("usage_cursors")
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_records_hour_start"))
        batch_op.drop_index(batch_op.f("ix_usage_records_account_id"))
    op.drop_table("usage_records")
