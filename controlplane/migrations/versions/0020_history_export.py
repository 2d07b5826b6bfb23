"""history export: each namespace's S3 sink for its closed workflows' histories

``history_export_sinks`` holds one sink per namespace (secret encrypted), the close-time
watermark of the export (``exported_until``), how many runs it exported and its last error.

Revision ID: 0020_history_export
Revises: 0019_audit_sink
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0020_history_export"
down_revision = "0019_audit_sink"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "history_export_sinks",
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("prefix", sa.String(length=512), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("endpoint_url", sa.String(length=512), nullable=True),
        sa.Column("access_key_id", sa.String(length=128), nullable=False),
        sa.Column("secret_access_key_encrypted", sa.Text(), nullable=False),
        _datetime("export_from"),
        _datetime("exported_until", nullable=True),
        sa.Column("exported_count", sa.Integer(), nullable=False),
        _datetime("last_exported_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _datetime("last_error_at", nullable=True),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_history_export_sinks_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_history_export_sinks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace_id", name=op.f("pk_history_export_sinks")),
    )
    op.create_index(
        op.f("ix_history_export_sinks_account_id"),
        "history_export_sinks",
        ["account_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_history_export_sinks_account_id"), table_name="history_export_sinks")
    op.drop_table("history_export_sinks")
