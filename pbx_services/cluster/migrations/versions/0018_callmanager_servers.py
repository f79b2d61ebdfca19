"""The Call Managers as rows of the servers table (role callmanager), watched like the others.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = ("media", "ivr", "queue", "meeting")
NEW_ROLES = (*OLD_ROLES, "callmanager")


def _role_type(roles: Sequence[str]) -> sa.Enum:
    return sa.Enum(*roles, name="server_role", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("role", existing_type=_role_type(OLD_ROLES), type_=_role_type(NEW_ROLES),
                           existing_nullable=False)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM servers WHERE role = 'callmanager'"))
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("role", existing_type=_role_type(NEW_ROLES), type_=_role_type(OLD_ROLES),
                           existing_nullable=False)
