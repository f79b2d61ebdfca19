"""Voicemail: users' mailboxes (PIN hash, email, limits) and the messages left in them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voicemail_boxes",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("pin_hash", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("greeting_prompt", sa.String(length=64), nullable=True),
        sa.Column("max_messages", sa.Integer(), nullable=False),
        sa.Column("max_seconds", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_voicemail_boxes_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_voicemail_boxes")),
    )
    op.create_index(op.f("ix_voicemail_boxes_changed_at"), "voicemail_boxes", ["changed_at"])
    op.create_table(
        "voicemail_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("status", sa.Enum("new", "saved", name="voicemail_message_status", native_enum=False,
                                    length=8), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["voicemail_boxes.user_id"],
                                name=op.f("fk_voicemail_messages_user_id_voicemail_boxes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemail_messages")),
    )
    op.create_index("ix_voicemail_messages_user_id_status", "voicemail_messages", ["user_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_voicemail_messages_user_id_status", table_name="voicemail_messages")
    op.drop_table("voicemail_messages")
    op.drop_index(op.f("ix_voicemail_boxes_changed_at"), table_name="voicemail_boxes")
    op.drop_table("voicemail_boxes")
