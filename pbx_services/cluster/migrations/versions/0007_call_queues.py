"""Call queues, their members (agents) and the agents' skills.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("skills", sa.String(length=255), nullable=False),
        sa.Column("max_wait", sa.Integer(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=False),
        sa.Column("overflow", sa.String(length=80), nullable=True),
        sa.Column("join_empty", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("leave_empty", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("wrap_up", sa.SmallInteger(), nullable=False),
        sa.Column("ring_timeout", sa.SmallInteger(), nullable=False),
        sa.Column("service_level", sa.SmallInteger(), nullable=False),
        sa.Column("position_interval", sa.SmallInteger(), nullable=False),
        sa.Column("max_misses", sa.SmallInteger(), nullable=False),
        sa.Column("callback", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("music_prompt", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_call_queues_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queues")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_call_queues_tenant_id_number")),
    )
    op.create_table(
        "queue_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("penalty", sa.SmallInteger(), nullable=False),
        sa.Column("dynamic", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("logged_in", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("pause_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["queue_id"], ["call_queues.id"],
                                name=op.f("fk_queue_members_queue_id_call_queues"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_queue_members_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_members")),
        sa.UniqueConstraint("queue_id", "user_id", name=op.f("uq_queue_members_queue_id_user_id")),
    )
    op.create_table(
        "agent_skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=32), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_agent_skills_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_skills")),
        sa.UniqueConstraint("user_id", "skill", name=op.f("uq_agent_skills_user_id_skill")),
    )


def downgrade() -> None:
    op.drop_table("agent_skills")
    op.drop_table("queue_members")
    op.drop_table("call_queues")
