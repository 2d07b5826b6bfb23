"""namespace rate limits and gateway auth method

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-24 13:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("namespaces", "gateway_routes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "requests_per_second", sa.Integer(), nullable=False, server_default="2000"
                )
            )
            batch.add_column(
                sa.Column("actions_per_second", sa.Integer(), nullable=False, server_default="500")
            )
            batch.add_column(
                sa.Column("auth_method", sa.String(16), nullable=False, server_default="mtls")
            )


def downgrade() -> None:
    for table in ("namespaces", "gateway_routes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("auth_method")
            batch.drop_column("actions_per_second")
            batch.drop_column("requests_per_second")
