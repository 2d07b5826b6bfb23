"""SCIM provisioning: a per-account SCIM bearer token and the SCIM attributes of users

``scim_tokens`` (one per account, only the SHA-256 of the token stored) and, on ``users``,
``active`` (deprovisioned users are kept but can no longer sign in or use their keys),
``external_id``, ``display_name``, ``given_name`` and ``family_name``.

Revision ID: 0022_scim
Revises: 0021_user_groups
Create Date: 2026-12-02 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0022_scim"
down_revision = "0021_user_groups"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "scim_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _datetime("last_used_at", nullable=True),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_scim_tokens_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("account_id", name=op.f("uq_scim_tokens_account_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_scim_tokens_token_hash")),
    )
    # Plain ADD COLUMN, never a batch copy of ``users``: on SQLite the copy drops the table,
    # and the ON DELETE CASCADE of web_sessions and user_group_members would empty them.
    op.add_column(
        "users", sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("users", sa.Column("external_id", sa.String(length=256), nullable=True))
    op.add_column("users", sa.Column("display_name", sa.String(length=200), nullable=True))
    op.add_column("users", sa.Column("given_name", sa.String(length=200), nullable=True))
    op.add_column("users", sa.Column("family_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    # DROP COLUMN (SQLite >= 3.35), for the same reason as above.
    for column in ("family_name", "given_name", "display_name", "external_id", "active"):
        op.drop_column("users", column)
    op.drop_table("scim_tokens")
