"""Users' outbound permission and concurrent-call limit, tenants' concurrent-call limit.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column(
            "permission", sa.Enum("internal", "local", "national", "international", "premium", "emergency",
                                  name="permissionclass", native_enum=False, length=16),
            server_default="national", nullable=False))
        batch.add_column(sa.Column("max_calls", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("max_calls", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("max_calls")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("max_calls")
        batch.drop_column("permission")
