"""Users' call forwarding (always, busy, no answer, unreachable) and do-not-disturb.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_forwarding",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("always", sa.String(length=32), nullable=True),
        sa.Column("busy", sa.String(length=32), nullable=True),
        sa.Column("no_answer", sa.String(length=32), nullable=True),
        sa.Column("no_answer_seconds", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.String(length=32), nullable=True),
        sa.Column("dnd", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_call_forwarding_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_call_forwarding")),
    )


def downgrade() -> None:
    op.drop_table("call_forwarding")
