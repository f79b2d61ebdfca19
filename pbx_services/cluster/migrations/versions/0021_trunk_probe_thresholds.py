"""Each trunk's probes in a row that take it down and bring it up again.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trunks") as batch:
        batch.add_column(sa.Column("down_after", sa.Integer(), server_default="2", nullable=False))
        batch.add_column(sa.Column("up_after", sa.Integer(), server_default="2", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("trunks") as batch:
        batch.drop_column("up_after")
        batch.drop_column("down_after")
