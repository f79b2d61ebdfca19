"""Trunks' OPTIONS probing, codecs and number format; DIDs' opening hours and closed destination.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trunks") as batch:
        batch.add_column(sa.Column("probe_interval", sa.Integer(), server_default="30", nullable=False))
        batch.add_column(sa.Column("codecs", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column(
            "number_format", sa.Enum("e164", "national", "as-dialled", name="numberformat", native_enum=False,
                                     length=16),
            server_default="as-dialled", nullable=False))
        batch.add_column(sa.Column("country_code", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("national_prefix", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("international_prefix", sa.String(length=4), server_default="00",
                                   nullable=False))
    with op.batch_alter_table("dids") as batch:
        batch.add_column(sa.Column("hours", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("holidays", sa.Text(), nullable=True))
        batch.add_column(sa.Column("closed_destination", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dids") as batch:
        for column in ("closed_destination", "holidays", "timezone", "hours"):
            batch.drop_column(column)
    with op.batch_alter_table("trunks") as batch:
        for column in ("international_prefix", "national_prefix", "country_code", "number_format", "codecs",
                       "probe_interval"):
            batch.drop_column(column)
