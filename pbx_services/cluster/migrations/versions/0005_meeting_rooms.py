"""Meeting rooms.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "meeting_rooms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("pin", sa.String(length=16), nullable=True),
        sa.Column("moderator_pin", sa.String(length=16), nullable=True),
        sa.Column("max_participants", sa.SmallInteger(), nullable=False),
        sa.Column("pin_tries", sa.SmallInteger(), nullable=False),
        sa.Column("wait_for_moderator", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("end_with_moderator", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("mute_on_entry", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("entry_tones", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("record", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_meeting_rooms_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_rooms")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_meeting_rooms_tenant_id_number")),
    )


def downgrade() -> None:
    op.drop_table("meeting_rooms")
