"""identity: service accounts, namespace access, users' resource_version

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("account_role", sa.String(length=32), nullable=True),
        sa.Column("namespace_id", sa.String(length=64), nullable=True),
        sa.Column("resource_version", sa.String(length=36), nullable=False),
        sa.Column(
            "created_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_service_accounts_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_accounts")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_service_accounts_account_id")),
    )
    op.create_index(
        op.f("ix_service_accounts_account_id"), "service_accounts", ["account_id"], unique=False
    )
    op.create_table(
        "namespace_access",
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("principal_kind", sa.String(length=32), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=16), nullable=False),
        sa.Column(
            "permission",
            sa.Enum(
                "READ",
                "WRITE",
                "ADMIN",
                name="namespacepermission",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", controlplane.models.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_namespace_access_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_namespace_access_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "namespace_id", "principal_kind", "principal_id", name=op.f("pk_namespace_access")
        ),
    )
    op.create_index(
        op.f("ix_namespace_access_account_id"), "namespace_access", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_namespace_access_principal_id"),
        "namespace_access",
        ["principal_id"],
        unique=False,
    )
    with op.batch_alter_table("users") as batch_op:
        # Existing users get a fixed first version; every update replaces it with a UUID.
        batch_op.add_column(
            sa.Column("resource_version", sa.String(length=36), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("resource_version")
    op.drop_index(op.f("ix_namespace_access_principal_id"), table_name="namespace_access")
    op.drop_index(op.f("ix_namespace_access_account_id"), table_name="namespace_access")
    op.drop_table("namespace_access")
    op.drop_index(op.f("ix_service_accounts_account_id"), table_name="service_accounts")
    op.drop_table("service_accounts")
