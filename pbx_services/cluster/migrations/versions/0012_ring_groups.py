"""Ring groups.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ring_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("ring_seconds", sa.SmallInteger(), nullable=False),
        sa.Column("final_destination", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_ring_groups_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ring_groups")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_ring_groups_tenant_id_number")),
    )


def downgrade() -> None:
    op.drop_table("ring_groups")
