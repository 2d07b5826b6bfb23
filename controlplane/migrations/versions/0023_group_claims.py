"""group claims: an account's OIDC claim / SAML attribute naming its users' IdP groups, and
the mapping of IdP groups to Stratus user groups

``group_claim_configs`` holds one row per account that turned group claims on (the claim and
attribute names); ``group_claim_mappings`` one row per (IdP group, user group) pair, deleted
with the configuration or with the user group.

Revision ID: 0023_group_claims
Revises: 0022_scim
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0023_group_claims"
down_revision = "0022_scim"
branch_labels = None
depends_on = None


def _datetime(name: str) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "group_claim_configs",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("oidc_claim", sa.String(length=256), nullable=False),
        sa.Column("saml_attribute", sa.String(length=256), nullable=False),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_group_claim_configs_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_group_claim_configs")),
    )
    op.create_table(
        "group_claim_mappings",
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("idp_group", sa.String(length=256), nullable=False),
        sa.Column("group_id", sa.String(length=36), nullable=False),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["group_claim_configs.account_id"],
            name=op.f("fk_group_claim_mappings_account_id_group_claim_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["user_groups.id"],
            name=op.f("fk_group_claim_mappings_group_id_user_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "idp_group", "group_id", name=op.f("pk_group_claim_mappings")
        ),
    )
    op.create_index(
        op.f("ix_group_claim_mappings_group_id"), "group_claim_mappings", ["group_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_group_claim_mappings_group_id"), table_name="group_claim_mappings")
    op.drop_table("group_claim_mappings")
    op.drop_table("group_claim_configs")
