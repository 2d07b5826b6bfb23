"""tenant metrics: the gateways' latency per namespace (``gateway_latency_buckets``, from
``gateway_instances.latency``), served by the tenant metrics endpoint

Revision ID: 0024_tenant_metrics
Revises: 0023_group_claims
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_tenant_metrics"
down_revision = "0023_group_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_latency_buckets",
        sa.Column("namespace_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("namespace_id", "bucket", name=op.f("pk_gateway_latency_buckets")),
    )
    with op.batch_alter_table("gateway_instances") as batch:
        batch.add_column(sa.Column("latency", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("gateway_instances") as batch:
        batch.drop_column("latency")
    op.drop_table("gateway_latency_buckets")
