"""Tenants' feature codes; users' pickup groups.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feature_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_feature_codes_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_codes")),
        sa.UniqueConstraint("tenant_id", "feature", name=op.f("uq_feature_codes_tenant_id_feature")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_feature_codes_tenant_id_code")),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("pickup_group", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("pickup_group")
    op.drop_table("feature_codes")
