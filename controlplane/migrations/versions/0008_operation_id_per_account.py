"""async operation ids are per account: the client's id moves to ``async_operation_id``,
unique per (account, id); ``id`` stays the internal (workflow) id

Revision ID: 0008
Revises: 0007_billing
Create Date: 2026-12-01 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("async_operations") as batch:
        batch.add_column(sa.Column("async_operation_id", sa.String(length=64), nullable=True))
    # Existing operations keep the id their clients know.
    op.execute("UPDATE async_operations SET async_operation_id = id")
    with op.batch_alter_table("async_operations") as batch:
        batch.alter_column("async_operation_id", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(
            "uq_async_operations_account_id_async_operation_id",
            ["account_id", "async_operation_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("async_operations") as batch:
        batch.drop_constraint("uq_async_operations_account_id_async_operation_id", type_="unique")
        batch.drop_column("async_operation_id")
