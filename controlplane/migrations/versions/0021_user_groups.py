"""user groups: named sets of users holding an account role and namespace permissions

``user_groups`` (unique name per account, optional account role, SCIM ``externalId``) and
``user_group_members`` (who made the membership: manual, scim or idp). A group's namespace
permissions are ``namespace_access`` rows with ``principal_kind`` ``"group"``.

Revision ID: 0021_user_groups
Revises: 0020_history_export
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0021_user_groups"
down_revision = "0020_history_export"
branch_labels = None
depends_on = None


def _datetime(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, controlplane.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "user_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("account_role", sa.String(length=32), nullable=True),
        sa.Column("external_id", sa.String(length=256), nullable=True),
        sa.Column("resource_version", sa.String(length=36), nullable=False),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_user_groups_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_groups")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_user_groups_account_id")),
    )
    op.create_index(op.f("ix_user_groups_account_id"), "user_groups", ["account_id"], unique=False)
    op.create_table(
        "user_group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        _datetime("created_at"),
        _datetime("updated_at"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["user_groups.id"],
            name=op.f("fk_user_group_members_group_id_user_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_user_group_members_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_user_group_members")),
    )
    op.create_index(
        op.f("ix_user_group_members_user_id"), "user_group_members", ["user_id"], unique=False
    )
    op.create_index(
        op.f("ix_user_group_members_account_id"),
        "user_group_members",
        ["account_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_group_members_account_id"), table_name="user_group_members")
    op.drop_index(op.f("ix_user_group_members_user_id"), table_name="user_group_members")
    op.drop_table("user_group_members")
    op.drop_index(op.f("ix_user_groups_account_id"), table_name="user_groups")
    op.drop_table("user_groups")
