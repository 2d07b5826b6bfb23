"""gateway registration: the namespaces each gateway could not serve; ids become stable

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Gateway ids used to change on every start; those rows name no gateway that will ever
    # poll again. Running gateways register again with their next poll.
    op.execute("DELETE FROM gateway_instances")
    with op.batch_alter_table("gateway_instances") as batch:
        batch.add_column(sa.Column("rejected", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("gateway_instances") as batch:
        batch.drop_column("rejected")
