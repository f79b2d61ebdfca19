"""Writes call detail records to the system of record, in batches.

`CdrWriter` buffers records (from `CallEnded` events or ready-made `Cdr` rows) and writes
all of them in one transaction when its owner calls `flush()`: it starts no thread and no
task, so the daemon decides when to flush (every second, at shutdown, ...). Subscribe
`writer.add` to `CallEnded` on the event bus to record every call.
"""

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import CdrDao
from pbx_services.cluster.events import CallEnded
from pbx_services.cluster.models import Cdr


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
    }


def _row_of_cdr(cdr: Cdr) -> dict[str, Any]:
    return {
        column.key: getattr(cdr, column.key)
        for column in inspect(Cdr).columns
        if not (column.primary_key and getattr(cdr, column.key) is None)
    }


class CdrWriter:
    """Buffers CDRs and writes them when `flush()` is called; not thread-safe."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._pending: list[dict[str, Any]] = []

    @property
    def pending(self) -> int:
        """How many records wait for the next flush."""
        return len(self._pending)

    def add(self, record: CallEnded | Cdr) -> None:
        """Buffer one record; nothing touches the database until `flush()`."""
        self._pending.append(_row_of_event(record) if isinstance(record, CallEnded) else _row_of_cdr(record))

    def flush(self) -> int:
        """Write every buffered record in one transaction; returns how many were written.

        If the database fails, the records stay buffered for the next flush and the
        error is raised to the caller.
        """
        if not self._pending:
            return 0
        with self._sessions.begin() as session:
            written = CdrDao(session=session).insert_many(self._pending)
        self._pending.clear()
        return written
