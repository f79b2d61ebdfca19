"""SIP trunks, outbound routes (with their ordered trunks) and inbound DIDs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.Enum("udp", "tcp", name="trunktransport", native_enum=False, length=8),
                  nullable=False),
        sa.Column("username", sa.String(length=128), nullable=True),
        sa.Column("password", sa.String(length=128), nullable=True),
        sa.Column("register", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("max_calls", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.String(length=32), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_trunks_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_trunks_tenant_id_name")),
    )
    op.create_table(
        "outbound_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("pattern", sa.String(length=128), nullable=False),
        sa.Column("strip", sa.SmallInteger(), nullable=False),
        sa.Column("prepend", sa.String(length=16), nullable=False),
        sa.Column("permission", sa.Enum("internal", "local", "national", "international", "premium",
                                        "emergency", name="permissionclass", native_enum=False, length=16),
                  nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_outbound_routes_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_routes")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_outbound_routes_tenant_id_name")),
    )
    op.create_table(
        "outbound_route_trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("trunk_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(["route_id"], ["outbound_routes.id"],
                                name=op.f("fk_outbound_route_trunks_route_id_outbound_routes"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trunk_id"], ["trunks.id"],
                                name=op.f("fk_outbound_route_trunks_trunk_id_trunks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_route_trunks")),
        sa.UniqueConstraint("route_id", "position", name=op.f("uq_outbound_route_trunks_route_id_position")),
    )
    op.create_table(
        "dids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_dids_tenant_id_tenants"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dids")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_dids_tenant_id_number")),
    )


def downgrade() -> None:
    op.drop_table("dids")
    op.drop_table("outbound_route_trunks")
    op.drop_table("outbound_routes")
    op.drop_table("trunks")
