"""SAML sign-in: per-account IdP metadata, issued AuthnRequests, the assertion replay cache

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-24 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def _timestamps() -> list[sa.Column[object]]:
    return [_datetime("created_at"), _datetime("updated_at")]


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "saml_idp_configs",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("idp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("sso_url", sa.Text(), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        *_timestamps(),
        _account_fk("saml_idp_configs"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_saml_idp_configs")),
    )
    op.create_table(
        "saml_authn_requests",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        _datetime("consumed_at", nullable=True),
        _datetime("expires_at"),
        *_timestamps(),
        _account_fk("saml_authn_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_authn_requests")),
    )
    with op.batch_alter_table("saml_authn_requests") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_authn_requests_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_saml_authn_requests_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "saml_assertions_seen",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("assertion_id", sa.String(length=256), nullable=False),
        _datetime("expires_at"),
        *_timestamps(),
        _account_fk("saml_assertions_seen"),
        sa.PrimaryKeyConstraint("account_id", "assertion_id", name=op.f("pk_saml_assertions_seen")),
    )
    with op.batch_alter_table("saml_assertions_seen") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_assertions_seen_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("saml_assertions_seen")
    op.drop_table("saml_authn_requests")
    op.drop_table("saml_idp_configs")
