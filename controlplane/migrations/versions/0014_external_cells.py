"""external cells: cells become a registry (name, placement, capacity, state, TLS, health);
gateway routes name their cell

Every cell so far is an account's local cell: it stays dedicated to its account, active, without
a namespace limit and without TLS. ``account_id`` becomes nullable (a shared cell serves many
accounts) and stays unique (a dedicated cell serves one).

Revision ID: 0014_external_cells
Revises: 0013_cell_endpoint
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0014_external_cells"
down_revision = "0013_cell_endpoint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.alter_column("account_id", existing_type=sa.String(length=16), nullable=True)
        batch.add_column(
            sa.Column("placement", sa.String(length=16), nullable=False, server_default="dedicated")
        )
        batch.add_column(sa.Column("max_namespaces", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="active")
        )
        batch.add_column(
            sa.Column("server_version", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("tls_ca_pem", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tls_cert_pem", sa.Text(), nullable=True))
        batch.add_column(sa.Column("tls_key_sealed", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("server_name", sa.String(length=255), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column(
                "health_state", sa.String(length=16), nullable=False, server_default="unknown"
            )
        )
        batch.add_column(sa.Column("health_reason", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column(
                "health_checked_at",
                controlplane.models.base.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    with op.batch_alter_table("gateway_routes") as batch:
        batch.add_column(
            sa.Column("cell_id", sa.String(length=64), nullable=False, server_default="")
        )
    # Routes published so far point at their namespace's cell.
    op.execute(
        "UPDATE gateway_routes SET cell_id = COALESCE((SELECT namespaces.cell_id FROM namespaces "
        "WHERE namespaces.id = gateway_routes.namespace_id), '')"
    )


def downgrade() -> None:
    with op.batch_alter_table("gateway_routes") as batch:
        batch.drop_column("cell_id")
    # Namespaces on cells no account owns (shared) cannot be expressed before 0014: they keep
    # their rows but lose their cell; registered cells go.
    op.execute(
        "UPDATE namespaces SET cell_id = NULL WHERE cell_id IN "
        "(SELECT id FROM cells WHERE account_id IS NULL)"
    )
    op.execute("DELETE FROM cells WHERE account_id IS NULL")
    with op.batch_alter_table("cells") as batch:
        for column in (
            "health_checked_at",
            "health_reason",
            "health_state",
            "server_name",
            "tls_key_sealed",
            "tls_cert_pem",
            "tls_ca_pem",
            "server_version",
            "state",
            "max_namespaces",
            "placement",
        ):
            batch.drop_column(column)
        batch.alter_column("account_id", existing_type=sa.String(length=16), nullable=False)
