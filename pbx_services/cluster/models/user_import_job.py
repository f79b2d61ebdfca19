from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import DOMAIN_MAX_LENGTH

FILE_NAME_MAX_LENGTH = 255
MESSAGE_MAX_LENGTH = 500


class ImportState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    """Stopped before the end of the file (bad header, database error, portal stopped)."""


class UserImportJob(Base):
    """A CSV import of users running in the background, and how far it got.

    Kept in the database, not in the portal's memory: the portal runs several workers on
    several hosts, and the request asking for progress may reach any of them.
    """

    __tablename__ = "user_import_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX_LENGTH))
    tenant_scope: Mapped[str | None] = mapped_column(String(DOMAIN_MAX_LENGTH))
    """The only tenant the file may add users to (a tenant administrator's); None: any."""
    created_by: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[ImportState] = mapped_column(
        Enum(ImportState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=ImportState.QUEUED)
    total: Mapped[int] = mapped_column(default=0)
    """Rows of the file after its header (blank lines not counted)."""
    processed: Mapped[int] = mapped_column(default=0)
    imported: Mapped[int] = mapped_column(default=0)
    existing: Mapped[int] = mapped_column(default=0)
    """Rows whose user exists already: skipped, left unchanged."""
    failed: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """The first bad rows: {"line", "column", "message"} each."""
    message: Mapped[str | None] = mapped_column(String(MESSAGE_MAX_LENGTH))
    """Why the job failed as a whole."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    def __repr__(self) -> str:
        return f"UserImportJob(id={self.id!r}, state={self.state!r})"
