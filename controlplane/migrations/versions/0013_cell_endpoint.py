"""cell endpoint: a cell is stored as its provider's endpoint (address, metrics URL), once

The ports columns repeated the address (``grpc_port``) or belonged to the local provider alone
(``metrics_port``, ``http_port``: the provider records them itself).

Revision ID: 0013_cell_endpoint
Revises: 0012
Create Date: 2026-12-15 10:00:00
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0013_cell_endpoint"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.add_column(sa.Column("metrics_url", sa.String(length=255), nullable=True))
    # Every cell so far is a local one: its metrics listen on loopback beside its frontend.
    op.execute(
        "UPDATE cells SET metrics_url = "
        "'http://127.0.0.1:' || CAST(metrics_port AS VARCHAR) || '/metrics'"
    )
    with op.batch_alter_table("cells") as batch:
        batch.alter_column("metrics_url", existing_type=sa.String(length=255), nullable=False)
        batch.drop_column("grpc_port")
        batch.drop_column("metrics_port")
        batch.drop_column("http_port")


def downgrade() -> None:
    with op.batch_alter_table("cells") as batch:
        batch.add_column(sa.Column("grpc_port", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("metrics_port", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("http_port", sa.Integer(), nullable=True))
    connection = op.get_bind()
    cells = sa.table(
        "cells",
        sa.column("id", sa.String),
        sa.column("address", sa.String),
        sa.column("metrics_url", sa.String),
        sa.column("grpc_port", sa.Integer),
        sa.column("metrics_port", sa.Integer),
        sa.column("http_port", sa.Integer),
    )
    for cell_id, address, metrics_url in connection.execute(
        sa.select(cells.c.id, cells.c.address, cells.c.metrics_url)
    ):
        connection.execute(
            cells.update()
            .where(cells.c.id == cell_id)
            .values(
                grpc_port=int(address.rsplit(":", 1)[1]),
                metrics_port=urlsplit(metrics_url).port or 0,
                # Not stored since 0013; the local provider's cell.json still has it.
                http_port=0,
            )
        )
    with op.batch_alter_table("cells") as batch:
        for column in ("grpc_port", "metrics_port", "http_port"):
            batch.alter_column(column, existing_type=sa.Integer(), nullable=False)
        batch.drop_column("metrics_url")
