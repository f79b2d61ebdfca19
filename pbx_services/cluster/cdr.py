"""Writes call detail records to the system of record, in batches.

`CdrWriter` buffers records (from `CallEnded` events or ready-made `Cdr` rows) and writes
all of them in one transaction when its owner calls `flush()`: it starts no thread and no
task, so the daemon decides when to flush (every second, at shutdown, ...). Subscribe
`writer.add` to `CallEnded` on the event bus to record every call.

With a `CdrJournal`, every record is also appended to a local file that `sync()` puts on
disk: the daemon syncs before it tells a phone the call is over, so a crash between that
and the next flush loses no CDR (the next start writes what the journal holds).
"""

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.cdr_journal import CdrJournal
from pbx_services.cluster.dao import CdrDao
from pbx_services.cluster.events import CallEnded
from pbx_services.cluster.models import Cdr

log = logging.getLogger(__name__)


def talk_seconds(event: CallEnded) -> int:
    """The CDR's duration: seconds from answer to end, rounded; 0 for a call never answered."""
    if event.answer_time is None:
        return 0
    return max(0, round((event.end_time - event.answer_time).total_seconds()))


def _row_of_event(event: CallEnded) -> dict[str, Any]:
    return {
        "call_id": event.call_id,
        "tenant_id": event.tenant_id,
        "caller": event.caller,
        "callee": event.callee,
        "caller_ip": event.caller_ip,
        "start_time": event.start_time,
        "answer_time": event.answer_time,
        "end_time": event.end_time,
        "disposition": event.disposition,
        "sip_code": event.sip_code,
        "hangup_by": event.hangup_by,
        "duration": talk_seconds(event),
        "recording": event.recording,
        "end_reason": event.end_reason,
        "dialed": event.dialed,
    }


def _row_of_cdr(cdr: Cdr) -> dict[str, Any]:
    return {
        column.key: getattr(cdr, column.key)
        for column in inspect(Cdr).columns
        if not (column.primary_key and getattr(cdr, column.key) is None)
    }


def _not_yet_written(session: Session, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` without those the database already has (same call id, start and end)."""
    call_ids = {row["call_id"] for row in rows}
    written = {tuple(row) for row in session.execute(select(Cdr.call_id, Cdr.start_time, Cdr.end_time)
                                                      .where(Cdr.call_id.in_(call_ids)))}
    return [row for row in rows if (row["call_id"], row["start_time"], row["end_time"]) not in written]


class CdrWriter:
    """Buffers CDRs and writes them when `flush()` is called; not thread-safe."""

    def __init__(self, *, sessions: sessionmaker[Session], journal: CdrJournal | None = None) -> None:
        self._sessions = sessions
        self._journal = journal
        self._pending: list[dict[str, Any]] = []
        self._recovered: list[dict[str, Any]] = []
        """Rows a previous process journaled; some may have reached the database before it died."""
        if journal is not None:
            self._recovered = journal.read()
            if self._recovered:
                log.warning("%d CDRs recovered from %s: writing them", len(self._recovered), journal.path)

    @property
    def pending(self) -> int:
        """How many records wait for the next flush."""
        return len(self._pending) + len(self._recovered)

    def add(self, record: CallEnded | Cdr) -> None:
        """Buffer one record (and journal it, on disk at the next `sync()`); nothing touches
        the database until `flush()`."""
        row = _row_of_event(record) if isinstance(record, CallEnded) else _row_of_cdr(record)
        self._pending.append(row)
        if self._journal is not None:
            self._journal.append(row)

    def sync(self) -> None:
        """Put the records added since the last sync on disk. Raises OSError."""
        if self._journal is not None:
            self._journal.sync()

    def flush(self) -> int:
        """Write every buffered record in one transaction; returns how many were written.

        If the database fails, the records stay buffered for the next flush and the
        error is raised to the caller.
        """
        if not self._pending and not self._recovered:
            return 0
        with self._sessions.begin() as session:
            rows = _not_yet_written(session, self._recovered) if self._recovered else []
            written = CdrDao(session=session).insert_many(rows + self._pending)
        self._recovered.clear()
        self._pending.clear()
        if self._journal is not None:
            self._journal.clear()
        return written
