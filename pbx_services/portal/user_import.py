"""CSV import of users as a background job, for the portal's upload form and its REST API.

The file is the one `pbx user import` reads (a header naming `extension`, `password` and
optionally `name`, `email`, `tenant`, `permission`, `max_calls`, `pickup_group`,
`withhold_number`; see `UserService.import_csv`), but the portal imports
what it can: every row is checked on its own, a bad row is reported by line and column and
skipped, and the good ones go in by batches of `BATCH_ROWS`, one transaction each, with
the job's progress written in the same transaction. A user that exists already is left
unchanged and counted as existing, as the CLI does.

The job's record (`UserImportJob`) is in the database, so any portal worker can answer a
request for its progress; the rows are imported by a thread of the worker that received
the file. A job whose record has not moved for `STALE_AFTER` is reported as interrupted
(the worker stopped under it).
"""

import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import NotFound, TenantDao, UserDao, chunked, refresh_statistics
from pbx_services.cluster.models import User
from pbx_services.cluster.models.base import utcnow
from pbx_services.cluster.models.user_import_job import (
    FILE_NAME_MAX_LENGTH,
    MESSAGE_MAX_LENGTH,
    ImportState,
    UserImportJob,
)
from pbx_services.cluster.numbering import number_owners
from pbx_services.cluster.users import (
    CSV_OPTIONAL_COLUMNS,
    CSV_REQUIRED_COLUMNS,
    RowProblem,
    UserColumns,
    parse_user_columns,
)
from pbx_services.cluster.users import _csv_rows as csv_rows
from pbx_services.cluster.validation import InvalidValue

log = logging.getLogger(__name__)

BATCH_ROWS = 1000
"""Rows checked and inserted per transaction; the progress moves by this much."""
ERRORS_KEPT = 1000
"""Bad rows whose errors the job keeps (all are counted in `failed`)."""
STALE_AFTER = timedelta(minutes=5)
STATISTICS_FIRST_AT = 2 * BATCH_ROWS
"""Users imported after which the database's statistics are refreshed, then each time the
count doubles (`dao.refresh_statistics`)."""
COLUMNS = CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS


@dataclass(frozen=True, slots=True)
class RowError:
    """Why (part of) one row of the file was not imported."""

    line: int
    """Line of the file, 1 being the header."""
    column: str | None
    """The column at fault; None when the row as a whole is (wrong number of fields)."""
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """A detached copy of a job's record, as the progress bar and the API show it."""

    id: int
    file_name: str
    tenant_scope: str | None
    created_by: str | None
    state: ImportState
    total: int
    processed: int
    imported: int
    existing: int
    failed: int
    errors: tuple[RowError, ...]
    message: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def percent(self) -> int:
        if self.state is ImportState.DONE:
            return 100
        return self.processed * 100 // self.total if self.total else 0

    @property
    def finished(self) -> bool:
        return self.state in (ImportState.DONE, ImportState.FAILED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "file_name": self.file_name, "tenant_scope": self.tenant_scope,
            "created_by": self.created_by, "state": self.state.value, "total": self.total,
            "processed": self.processed, "imported": self.imported, "existing": self.existing,
            "failed": self.failed, "percent": self.percent,
            "errors": [error.as_dict() for error in self.errors], "message": self.message,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def of(cls, job: UserImportJob) -> "ImportProgress":
        return cls(
            id=job.id, file_name=job.file_name, tenant_scope=job.tenant_scope, created_by=job.created_by,
            state=job.state, total=job.total, processed=job.processed, imported=job.imported,
            existing=job.existing, failed=job.failed,
            errors=tuple(RowError(error["line"], error["column"], error["message"]) for error in job.errors),
            message=job.message, created_at=job.created_at, finished_at=job.finished_at,
        )


@dataclass(frozen=True, slots=True)
class _TenantRef:
    id: int
    domain: str


@dataclass(frozen=True, slots=True)
class _NewUser:
    line: int
    tenant: _TenantRef
    user: UserColumns

    @property
    def extension(self) -> str:
        return self.user.extension

    @property
    def key(self) -> tuple[int, str]:
        return self.tenant.id, self.extension


@dataclass
class _BatchOutcome:
    imported: int = 0
    existing: int = 0
    errors: list[RowError] | None = None


class UserImporter:
    """Starts imports and reads their progress; `default_domain` is the tenant of a row that
    names none, unless the import is scoped to one tenant (a tenant administrator's)."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str, batch_rows: int = BATCH_ROWS,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._default_domain = default_domain
        self._batch_rows = batch_rows
        self._clock = clock
        self._threads: dict[int, threading.Thread] = {}

    def create(self, data: bytes, *, file_name: str, tenant_scope: str | None = None,
               created_by: str | None = None) -> tuple[ImportProgress, str]:
        """The job of the file `data` (queued) and its text, for `run`. InvalidValue, naming
        the file, when it cannot be imported at all: not UTF-8, empty, a bad header."""
        text = _decode(data)
        header_problems: list[RowProblem] = []
        total = 0
        for _ in csv_rows(io.StringIO(text, newline=""), header_problems):
            total += 1
        if header_problems and header_problems[0].line == 1:
            raise InvalidValue("file: " + "; ".join(problem.message for problem in header_problems
                                                    if problem.line == 1))
        total += len(header_problems)  # rows with the wrong number of fields, reported again by `run`
        now = self._clock()
        with self._sessions.begin() as session:
            job = UserImportJob(file_name=file_name[:FILE_NAME_MAX_LENGTH] or "users.csv",
                                tenant_scope=tenant_scope, created_by=created_by, state=ImportState.QUEUED,
                                total=total, errors=[], created_at=now, updated_at=now)
            session.add(job)
            session.flush()
            return ImportProgress.of(job), text

    def start(self, data: bytes, *, file_name: str, tenant_scope: str | None = None,
              created_by: str | None = None) -> ImportProgress:
        """`create` the job, and import its rows in a thread of this process."""
        progress, text = self.create(data, file_name=file_name, tenant_scope=tenant_scope,
                                     created_by=created_by)
        thread = threading.Thread(target=self.run, args=(progress.id, text), daemon=True,
                                  name=f"user-import-{progress.id}")
        self._threads[progress.id] = thread
        thread.start()
        return progress

    def join(self, job_id: int, timeout: float | None = None) -> None:
        """Wait for the thread of a job this importer started (tests, a clean shutdown)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def run(self, job_id: int, text: str) -> ImportProgress:
        """Import the rows of `text` for the job; its record says how far it got at every batch."""
        try:
            self._update(job_id, state=ImportState.RUNNING)
            self._import_rows(job_id, text)
            self._update(job_id, state=ImportState.DONE, finished_at=self._clock())
        except Exception as exc:  # the job must end in a state the administrator sees
            log.exception("user import %s failed", job_id)
            self._update(job_id, state=ImportState.FAILED, finished_at=self._clock(),
                         message=f"stopped: {exc}"[:MESSAGE_MAX_LENGTH])
        return self.progress(job_id)

    def progress(self, job_id: int, *, tenant_scope: str | None = None) -> ImportProgress:
        """The job's progress; NotFound when there is none, or it is not of `tenant_scope`'s
        administrator (when given)."""
        with self._sessions.begin() as session:
            job = session.get(UserImportJob, job_id)
            if job is None or (tenant_scope is not None and job.tenant_scope != tenant_scope):
                raise NotFound("UserImportJob", {"id": job_id})
            self._mark_if_stale(job)
            return ImportProgress.of(job)

    def recent(self, *, tenant_scope: str | None = None, limit: int = 10) -> list[ImportProgress]:
        """The newest jobs first: every job, or only those of `tenant_scope`'s administrators."""
        with self._sessions.begin() as session:
            statement = select(UserImportJob).order_by(UserImportJob.id.desc()).limit(limit)
            if tenant_scope is not None:
                statement = statement.where(UserImportJob.tenant_scope == tenant_scope)
            jobs = session.scalars(statement).all()
            for job in jobs:
                self._mark_if_stale(job)
            return [ImportProgress.of(job) for job in jobs]

    def _mark_if_stale(self, job: UserImportJob) -> None:
        if job.state not in (ImportState.QUEUED, ImportState.RUNNING):
            return
        now = self._clock()
        if now - job.updated_at > STALE_AFTER:
            job.state, job.finished_at = ImportState.FAILED, now
            job.message = "interrupted: the portal process importing the file stopped"

    def _import_rows(self, job_id: int, text: str) -> None:
        with self._sessions() as session:
            tenants = {tenant.domain: _TenantRef(tenant.id, tenant.domain)
                       for tenant in TenantDao(session=session).find_all_by()}
            scope = self._scope_of(session, job_id)
        first_line_of: dict[tuple[int, str], int] = {}
        imported, statistics_at = 0, STATISTICS_FIRST_AT
        problems: list[RowProblem] = []  # rows with the wrong number of fields, from csv_rows
        for batch in chunked(csv_rows(io.StringIO(text, newline=""), problems), self._batch_rows):
            # The rows of wrong length met while this batch was read.
            errors = [RowError(problem.line, None, problem.message) for problem in problems]
            processed = len(batch) + len(problems)
            problems.clear()
            rows: list[_NewUser] = []
            for line, fields in batch:
                row = self._parse_row(line, fields, tenants, scope, errors)
                if row is None:
                    continue
                if row.key in first_line_of:
                    errors.append(RowError(line, "extension", f"{row.extension}@{row.tenant.domain} is "
                                                              f"already on line {first_line_of[row.key]}"))
                    continue
                first_line_of[row.key] = line
                rows.append(row)
            imported += self._insert_batch(job_id, rows, errors, processed=processed)
            if imported >= statistics_at:  # the table doubled since the planner last looked
                statistics_at = imported * 2
                with self._sessions.begin() as session:
                    refresh_statistics(session, User)
        if problems:  # bad rows after the last good one, or CSV so broken that reading stopped
            self._insert_batch(job_id, [], [RowError(problem.line, None, problem.message)
                                            for problem in problems], processed=len(problems))

    def _scope_of(self, session: Session, job_id: int) -> _TenantRef | None:
        domain = session.get_one(UserImportJob, job_id).tenant_scope
        if domain is None:
            return None
        tenant = TenantDao(session=session).get_by(domain=domain)
        return _TenantRef(tenant.id, tenant.domain)

    def _parse_row(self, line: int, fields: dict[str, str], tenants: dict[str, _TenantRef],
                   scope: _TenantRef | None, errors: list[RowError]) -> _NewUser | None:
        """The row's new user, or None after adding an error for each bad column to `errors`."""
        user, bad_columns = parse_user_columns(fields)
        found = [RowError(line, column, message) for column, message in bad_columns]
        tenant = self._row_tenant(fields.get("tenant", "").lower(), tenants, scope, line, found)
        errors.extend(found)
        if found or tenant is None:
            return None
        return _NewUser(line=line, tenant=tenant, user=user)

    def _row_tenant(self, domain: str, tenants: dict[str, _TenantRef], scope: _TenantRef | None,
                    line: int, found: list[RowError]) -> _TenantRef | None:
        if scope is not None:
            if domain and domain != scope.domain:
                found.append(RowError(line, "tenant", f"tenant {domain!r}: this import may only add users "
                                                      f"to {scope.domain}"))
                return None
            return scope
        tenant = tenants.get(domain or self._default_domain)
        if tenant is None:
            found.append(RowError(line, "tenant", f"unknown tenant {domain!r}" if domain else
                                  "no tenant given and the default tenant does not exist"))
        return tenant

    def _insert_batch(self, job_id: int, rows: Sequence[_NewUser], errors: list[RowError], *,
                      processed: int) -> int:
        """Insert the new users of `rows` and record the batch in the job, in one transaction.
        Users added by someone else meanwhile make the batch start again, once. Returns how
        many users it added."""
        for attempt in (1, 2):
            try:
                with self._sessions.begin() as session:
                    outcome = self._insert(session, rows)
                    all_errors = sorted(errors + (outcome.errors or []), key=lambda error: error.line)
                    job = session.get_one(UserImportJob, job_id)
                    job.processed += processed
                    job.imported += outcome.imported
                    job.existing += outcome.existing
                    job.failed += len({error.line for error in all_errors})
                    room = ERRORS_KEPT - len(job.errors)
                    if room > 0 and all_errors:
                        job.errors = [*job.errors, *(error.as_dict() for error in all_errors[:room])]
                    job.updated_at = self._clock()
                return outcome.imported
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _insert(self, session: Session, rows: Sequence[_NewUser]) -> _BatchOutcome:
        existing = UserDao(session=session).existing_extensions(row.key for row in rows)
        new = [row for row in rows if row.key not in existing]
        taken = number_owners(session, (row.key for row in new), besides_users=True)
        errors = [RowError(row.line, "extension", f"{row.extension} is already {taken[row.key]} of "
                                                  f"{row.tenant.domain}")
                  for row in new if row.key in taken]
        now = self._clock()
        imported = UserDao(session=session).insert_many(
            row.user.insert_values(row.tenant.id, row.tenant.domain, now)
            for row in new if row.key not in taken)
        return _BatchOutcome(imported=imported, existing=len(rows) - len(new), errors=errors)

    def _update(self, job_id: int, **values: Any) -> None:
        with self._sessions.begin() as session:
            job = session.get_one(UserImportJob, job_id)
            for column, value in values.items():
                setattr(job, column, value)
            job.updated_at = self._clock()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidValue(f"file: line {line} is not UTF-8 text") from None
