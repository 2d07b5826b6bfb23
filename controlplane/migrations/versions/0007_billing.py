"""billing: account plans, credits, invoices and their lines, credit notes, export sinks,
invoice deliveries; a covering index for rating a month of usage

Revision ID: 0007_billing
Revises: 0006_usage
Create Date: 2026-12-01 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0007_billing"
down_revision = "0006_usage"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def _decimal(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.DecimalText(), nullable=nullable)


def _timestamps() -> list[sa.Column[object]]:
    return [_datetime("created_at"), _datetime("updated_at")]


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="CASCADE",
    )


def _invoice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["invoice_id"],
        ["invoices.id"],
        name=op.f(f"fk_{table}_invoice_id_invoices"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "account_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        _datetime("effective_from"),
        *_timestamps(),
        _account_fk("account_plans"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_plans")),
        sa.UniqueConstraint(
            "account_id", "effective_from", name=op.f("uq_account_plans_account_id")
        ),
    )
    op.create_table(
        "credits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        _decimal("amount"),
        _decimal("remaining"),
        _datetime("expires_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        _account_fk("credits"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credits")),
    )
    op.create_index(op.f("ix_credits_account_id"), "credits", ["account_id"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        _datetime("period_start"),
        _datetime("period_end"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price_book_version", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=200), nullable=False),
        _decimal("subtotal"),
        _decimal("credits_applied"),
        _decimal("total"),
        sa.Column("credit_applications", sa.JSON(), nullable=False),
        _datetime("rated_at"),
        _datetime("finalized_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        _account_fk("invoices"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("account_id", "period_start", name=op.f("uq_invoices_account_id")),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_type", sa.String(length=16), nullable=False),
        sa.Column("namespace_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _decimal("quantity"),
        _decimal("unit_price", nullable=True),
        _decimal("amount"),
        _invoice_fk("invoice_lines"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(op.f("ix_invoice_lines_invoice_id"), "invoice_lines", ["invoice_id"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        _decimal("amount"),
        sa.Column("reason", sa.Text(), nullable=False),
        *_timestamps(),
        _invoice_fk("credit_notes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
    )
    op.create_index(op.f("ix_credit_notes_invoice_id"), "credit_notes", ["invoice_id"])
    op.create_index(op.f("ix_credit_notes_account_id"), "credit_notes", ["account_id"])
    op.create_table(
        "export_sinks",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("prefix", sa.String(length=512), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("endpoint_url", sa.String(length=512), nullable=True),
        sa.Column("access_key_id", sa.String(length=128), nullable=False),
        sa.Column("secret_access_key_encrypted", sa.Text(), nullable=False),
        _datetime("export_from"),
        _datetime("usage_exported_through", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _datetime("last_error_at", nullable=True),
        *_timestamps(),
        _account_fk("export_sinks"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_export_sinks")),
    )
    op.create_table(
        "invoice_deliveries",
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("json_key", sa.String(length=1024), nullable=False),
        sa.Column("csv_key", sa.String(length=1024), nullable=False),
        _datetime("delivered_at"),
        _invoice_fk("invoice_deliveries"),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_deliveries")),
    )
    # Each usage row names its UTC month, so rating a month reads that month's index entries
    # only; rows written before this revision get theirs from hour_start.
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.add_column(_datetime("period_start", nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # UTCDateTime is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' text on SQLite.
        op.execute(
            "UPDATE usage_records SET period_start = substr(hour_start, 1, 8) || "
            "'01 00:00:00.000000'"
        )
    else:
        op.execute(
            "UPDATE usage_records SET period_start = "
            "date_trunc('month', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        )
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.alter_column(
            "period_start",
            existing_type=controlplane.models.base.UTCDateTime(timezone=True),
            nullable=False,
        )
        # Covers the rating query: one month grouped by account, namespace and kind, read in
        # group order without visiting the table.
        batch_op.create_index(
            "ix_usage_records_rating",
            ["period_start", "account_id", "namespace_id", "kind", "quantity"],
        )
        batch_op.create_index("ix_usage_records_account_hour", ["account_id", "hour_start"])


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.drop_index("ix_usage_records_account_hour")
        batch_op.drop_index("ix_usage_records_rating")
        batch_op.drop_column("period_start")
    op.drop_table("invoice_deliveries")
    op.drop_table("export_sinks")
    op.drop_table("credit_notes")
    op.drop_table("invoice_lines")
    op.drop_table("invoices")
    op.drop_table("credits")
    op.drop_table("account_plans")
