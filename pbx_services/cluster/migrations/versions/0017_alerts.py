"""Alerts: their history, the e-mails about them (and their delivery), the alert engine's state.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("server", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_role_server_resolved_at", "alerts", ["role", "server", "resolved_at"])
    op.create_index(op.f("ix_alerts_since"), "alerts", ["since"])
    op.create_table(
        "alert_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("servers_down", sa.Text(), nullable=False),
        sa.Column("servers_back", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("delivery", sa.Enum("pending", "sent", "failed", name="alert_email_delivery",
                                      native_enum=False, length=8), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("sent_by", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_emails")),
    )
    op.create_index(op.f("ix_alert_emails_created_at"), "alert_emails", ["created_at"])
    op.create_index("ix_alert_emails_delivery_next_attempt_at", "alert_emails",
                    ["delivery", "next_attempt_at"])
    op.create_table(
        "alert_engine_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("engine", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("saved_by", sa.String(length=128), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_engine_state")),
    )


def downgrade() -> None:
    op.drop_table("alert_engine_state")
    op.drop_index("ix_alert_emails_delivery_next_attempt_at", table_name="alert_emails")
    op.drop_index(op.f("ix_alert_emails_created_at"), table_name="alert_emails")
    op.drop_table("alert_emails")
    op.drop_index(op.f("ix_alerts_since"), table_name="alerts")
    op.drop_index("ix_alerts_role_server_resolved_at", table_name="alerts")
    op.drop_table("alerts")
