"""insights: the workload insights' findings per (namespace, window, kind, subject), the last
analysis of each (namespace, window), and the gateways' RESOURCE_EXHAUSTED answers per
namespace and hour (``throttled_hours``, from ``gateway_instances.throttled``)

Revision ID: 0016_insights
Revises: 0015_operator_sessions
Create Date: 2026-12-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0016_insights"
down_revision = "0015_operator_sessions"
branch_labels = None
depends_on = None

_UTC = controlplane.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "insight_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_name", sa.String(length=1024), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("recommendation", sa.Text(), nullable=False),
        sa.Column("first_seen", _UTC, nullable=False),
        sa.Column("last_seen", _UTC, nullable=False),
        sa.Column("resolved_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_insight_findings_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_findings")),
        sa.UniqueConstraint(
            "namespace_id",
            "window",
            "kind",
            "subject_kind",
            "subject_name",
            name=op.f("uq_insight_findings_namespace_id"),
        ),
    )
    op.create_index(
        op.f("ix_insight_findings_account_id"), "insight_findings", ["account_id"], unique=False
    )
    op.create_index(
        "ix_insight_findings_read",
        "insight_findings",
        ["namespace_id", "window", "resolved_at"],
        unique=False,
    )
    op.create_table(
        "insight_analyses",
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("analysed_at", _UTC, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("calls", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_insight_analyses_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace_id", "window", name=op.f("pk_insight_analyses")),
    )
    op.create_index(
        op.f("ix_insight_analyses_account_id"), "insight_analyses", ["account_id"], unique=False
    )
    op.create_table(
        "throttled_hours",
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("hour_start", _UTC, nullable=False),
        sa.Column("answers", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("namespace_id", "hour_start", name=op.f("pk_throttled_hours")),
    )
    with op.batch_alter_table("gateway_instances") as batch:
        batch.add_column(sa.Column("throttled", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("gateway_instances") as batch:
        batch.drop_column("throttled")
    op.drop_table("throttled_hours")
    op.drop_table("insight_analyses")
    op.drop_index("ix_insight_findings_read", table_name="insight_findings")
    op.drop_index(op.f("ix_insight_findings_account_id"), table_name="insight_findings")
    op.drop_table("insight_findings")
