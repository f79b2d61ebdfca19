"""IVR menus, their options, prompts, schedules with holidays; application-server roles.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("media",)
NEW_ROLES = ("media", "ivr", "queue", "meeting")


def _role_type(roles: Sequence[str]) -> sa.Enum:
    return sa.Enum(*roles, name="server_role", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("role", existing_type=_role_type(OLD_ROLES), type_=_role_type(NEW_ROLES),
                           existing_nullable=False)
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("audio", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_prompts_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_prompts_tenant_id_name")),
    )
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("hours", sa.String(length=255), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_schedules_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_schedules_tenant_id_name")),
    )
    op.create_table(
        "holidays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"],
                                name=op.f("fk_holidays_schedule_id_schedules"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holidays")),
        sa.UniqueConstraint("schedule_id", "day", name=op.f("uq_holidays_schedule_id_day")),
    )
    op.create_table(
        "ivr_menus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("greeting_id", sa.Integer(), nullable=False),
        sa.Column("invalid_prompt_id", sa.Integer(), nullable=True),
        sa.Column("timeout_prompt_id", sa.Integer(), nullable=True),
        sa.Column("timeout", sa.SmallInteger(), nullable=False),
        sa.Column("inter_digit_timeout", sa.SmallInteger(), nullable=False),
        sa.Column("retries", sa.SmallInteger(), nullable=False),
        sa.Column("final_destination", sa.String(length=80), nullable=False),
        sa.Column("dial_by_extension", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("closed_destination", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["greeting_id"], ["prompts.id"],
                                name=op.f("fk_ivr_menus_greeting_id_prompts")),
        sa.ForeignKeyConstraint(["invalid_prompt_id"], ["prompts.id"],
                                name=op.f("fk_ivr_menus_invalid_prompt_id_prompts")),
        sa.ForeignKeyConstraint(["timeout_prompt_id"], ["prompts.id"],
                                name=op.f("fk_ivr_menus_timeout_prompt_id_prompts")),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"],
                                name=op.f("fk_ivr_menus_schedule_id_schedules"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_ivr_menus_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_menus")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_ivr_menus_tenant_id_number")),
    )
    op.create_table(
        "ivr_options",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("menu_id", sa.Integer(), nullable=False),
        sa.Column("digits", sa.String(length=8), nullable=False),
        sa.Column("destination", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(["menu_id"], ["ivr_menus.id"], name=op.f("fk_ivr_options_menu_id_ivr_menus"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ivr_options")),
        sa.UniqueConstraint("menu_id", "digits", name=op.f("uq_ivr_options_menu_id_digits")),
    )


def downgrade() -> None:
    op.drop_table("ivr_options")
    op.drop_table("ivr_menus")
    op.drop_table("holidays")
    op.drop_table("schedules")
    op.drop_table("prompts")
    op.execute(sa.text("DELETE FROM servers WHERE role <> 'media'"))
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("role", existing_type=_role_type(NEW_ROLES), type_=_role_type(OLD_ROLES),
                           existing_nullable=False)
