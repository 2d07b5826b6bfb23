"""audit log sink: where each account's audit events go, hourly, as JSON Lines in S3

``audit_sinks`` holds one S3 target per account (the secret encrypted, as for export sinks),
the first hour to export, the cursor (start of the last hour written) and the sink's health
(last success, last error).

Revision ID: 0019_audit_sink
Revises: 0018_namespace_governance
Create Date: 2026-12-01 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0019_audit_sink"
down_revision = "0018_namespace_governance"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_sinks",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("prefix", sa.String(length=512), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("endpoint_url", sa.String(length=512), nullable=True),
        sa.Column("access_key_id", sa.String(length=128), nullable=False),
        sa.Column("secret_access_key_encrypted", sa.Text(), nullable=False),
        _datetime("export_from"),
        _datetime("exported_through", nullable=True),
        _datetime("last_success_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _datetime("last_error_at", nullable=True),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_audit_sinks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_audit_sinks")),
    )


def downgrade() -> None:
    op.drop_table("audit_sinks")
