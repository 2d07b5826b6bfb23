"""namespace governance: delete protection, tags, custom search attributes, codec server

``namespaces`` gains ``delete_protection`` (false for every existing namespace), ``tags``,
``search_attributes`` and ``search_attribute_pending`` (empty JSON objects) and
``codec_server`` (null).

Revision ID: 0018_namespace_governance
Revises: 0017_account_lifecycle
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_namespace_governance"
down_revision = "0017_account_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as batch:
        batch.add_column(
            sa.Column("delete_protection", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        for column in ("tags", "search_attributes", "search_attribute_pending"):
            batch.add_column(sa.Column(column, sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("codec_server", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("namespaces") as batch:
        for column in (
            "codec_server",
            "search_attribute_pending",
            "search_attributes",
            "tags",
            "delete_protection",
        ):
            batch.drop_column(column)
