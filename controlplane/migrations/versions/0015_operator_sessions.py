"""operator sessions: a web session may belong to the operator (the one-time link `stratus up`
prints), not only to a user of an account

``web_sessions`` gains ``principal_kind`` (every existing session is a user's) and
``operator_key_id``; ``user_id`` and ``account_id`` become nullable, and a check constraint
keeps a user's session with its user and account and the operator's with its key only.
``oidc_login_attempts`` gains ``operator_key_id`` for the operator's pending link.

Revision ID: 0015_operator_sessions
Revises: 0014_external_cells
Create Date: 2026-12-21 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_operator_sessions"
down_revision = ("0014_external_cells", "0003")
branch_labels = None
# web_sessions and oidc_login_attempts come from the 0003 branch: 0015 merges it, so that
# branch ends here (a `depends_on` would leave 0003 a head that the version table never lists).
depends_on = None

_PRINCIPAL_CHECK = (
    "(principal_kind = 'user' AND user_id IS NOT NULL AND account_id IS NOT NULL "
    "AND operator_key_id IS NULL) OR (principal_kind = 'operator' AND user_id IS NULL "
    "AND account_id IS NULL AND operator_key_id IS NOT NULL)"
)


def upgrade() -> None:
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(
            sa.Column("principal_kind", sa.String(length=16), nullable=False, server_default="user")
        )
        batch.add_column(sa.Column("operator_key_id", sa.String(length=16), nullable=True))
        batch.create_foreign_key(
            op.f("fk_web_sessions_operator_key_id_api_keys"),
            "api_keys",
            ["operator_key_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.alter_column("user_id", existing_type=sa.String(length=36), nullable=True)
        batch.alter_column("account_id", existing_type=sa.String(length=16), nullable=True)
        batch.create_check_constraint(op.f("ck_web_sessions_principal"), _PRINCIPAL_CHECK)
    with op.batch_alter_table("oidc_login_attempts") as batch:
        batch.add_column(sa.Column("operator_key_id", sa.String(length=16), nullable=True))
        batch.create_foreign_key(
            op.f("fk_oidc_login_attempts_operator_key_id_api_keys"),
            "api_keys",
            ["operator_key_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    # The operator's sessions and pending links cannot be expressed before 0015: they go.
    op.execute("DELETE FROM oidc_login_attempts WHERE operator_key_id IS NOT NULL")
    with op.batch_alter_table("oidc_login_attempts") as batch:
        batch.drop_constraint(
            op.f("fk_oidc_login_attempts_operator_key_id_api_keys"), type_="foreignkey"
        )
        batch.drop_column("operator_key_id")
    op.execute("DELETE FROM web_sessions WHERE principal_kind <> 'user'")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_constraint(op.f("ck_web_sessions_principal"), type_="check")
        batch.drop_constraint(op.f("fk_web_sessions_operator_key_id_api_keys"), type_="foreignkey")
        batch.drop_column("operator_key_id")
        batch.drop_column("principal_kind")
        batch.alter_column("user_id", existing_type=sa.String(length=36), nullable=False)
        batch.alter_column("account_id", existing_type=sa.String(length=16), nullable=False)
