"""account lifecycle: accounts get a state (active, suspended, deleting, deleted), the reason of
a suspension and when their deleted data goes; gateway routes carry the suspension; users'
invitations expire until accepted

Every existing account is active; every existing user counts as accepted (no expiry).

Revision ID: 0017_account_lifecycle
Revises: 0016_insights
Create Date: 2026-12-22 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import controlplane.models.base

revision = "0017_account_lifecycle"
down_revision = "0016_insights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="active")
        )
        batch.add_column(
            sa.Column("suspension_reason", sa.String(length=500), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("state_changed_at", controlplane.models.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("data_removal_after", controlplane.models.base.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("data_removed_at", controlplane.models.base.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("gateway_routes") as batch:
        batch.add_column(
            sa.Column("suspended", sa.String(length=600), nullable=False, server_default="")
        )
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "invitation_expires_at", controlplane.models.base.UTCDateTime(), nullable=True
            )
        )
        batch.add_column(
            sa.Column("accepted_at", controlplane.models.base.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+, PostgreSQL): a batch would copy ``accounts`` and
    # ``users``, which other tables reference.
    for column in ("accepted_at", "invitation_expires_at"):
        op.drop_column("users", column)
    op.drop_column("gateway_routes", "suspended")
    for column in (
        "data_removed_at",
        "data_removal_after",
        "state_changed_at",
        "suspension_reason",
        "state",
    ):
        op.drop_column("accounts", column)
