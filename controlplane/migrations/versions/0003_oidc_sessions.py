"""OIDC sign-in attempts and web sessions

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-24 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("identity_provider", sa.String(length=64), nullable=False),
        sa.Column(
            "expires_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_web_sessions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    with op.batch_alter_table("web_sessions") as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_web_sessions_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "oidc_login_attempts",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("account_hint", sa.String(length=16), nullable=True),
        sa.Column("cli_redirect", sa.Text(), nullable=True),
        sa.Column("cli_challenge", sa.String(length=64), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column(
            "consumed_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "expires_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oidc_login_attempts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oidc_login_attempts")),
        sa.UniqueConstraint("handoff_hash", name=op.f("uq_oidc_login_attempts_handoff_hash")),
    )
    with op.batch_alter_table("oidc_login_attempts") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oidc_login_attempts_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("oidc_login_attempts")
    op.drop_table("web_sessions")
