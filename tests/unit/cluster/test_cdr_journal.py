"""The CDR journal: what a process that died before its flush leaves is written at the next start."""

import dataclasses
import json
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.cdr import CdrWriter
from pbx_services.cluster.cdr_journal import CdrJournal
from pbx_services.cluster.events import Disposition, HangupBy

from .test_cdr import all_cdrs, call_ended


def test_a_synced_cdr_is_written_by_the_next_process(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "cdr" / "journal"
    crashed = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    crashed.add(call_ended(1))
    crashed.add(call_ended(2, answered=False))
    crashed.sync()
    # The process dies here: no flush.

    restarted = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    assert restarted.pending == 2
    assert restarted.flush() == 2

    cdrs = sorted(all_cdrs(sessions), key=lambda cdr: cdr.call_id)
    assert [cdr.call_id for cdr in cdrs] == ["call-1@192.0.2.1", "call-2@192.0.2.1"]
    assert cdrs[0].disposition is Disposition.ANSWERED and cdrs[0].hangup_by is HangupBy.CALLEE
    assert cdrs[0].start_time == call_ended(1).start_time and cdrs[0].duration == 60
    assert cdrs[1].disposition is Disposition.NO_ANSWER and cdrs[1].answer_time is None
    assert path.stat().st_size == 0
    assert CdrWriter(sessions=sessions, journal=CdrJournal(path)).pending == 0


def test_a_cdr_not_synced_is_not_on_disk(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "journal"
    writer = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    writer.add(call_ended(1))

    assert path.stat().st_size == 0
    writer.sync()
    assert path.stat().st_size > 0


def test_records_already_in_the_database_are_not_written_twice(sessions: sessionmaker[Session],
                                                                tmp_path: Path) -> None:
    """The crash fell between the database's commit and the journal's emptying."""
    path = tmp_path / "journal"
    journal = CdrJournal(path)
    writer = CdrWriter(sessions=sessions, journal=journal)
    writer.add(call_ended(1))
    writer.sync()
    saved = path.read_bytes()
    writer.flush()
    path.write_bytes(saved)  # as if the truncation had not happened
    writer.add(call_ended(2))
    writer.sync()

    restarted = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    assert restarted.flush() == 1
    assert sorted(cdr.call_id for cdr in all_cdrs(sessions)) == ["call-1@192.0.2.1", "call-2@192.0.2.1"]


def test_a_row_journaled_by_an_older_version_is_written_with_its_new_columns_null(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "journal"
    writer = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    writer.add(call_ended(1))
    writer.add(dataclasses.replace(call_ended(2), dialed="2000"))
    writer.sync()
    older = [json.loads(line) for line in path.read_text().splitlines()]
    del older[0]["dialed"]  # a version before the column
    path.write_text("".join(json.dumps(row) + "\n" for row in older))

    assert CdrWriter(sessions=sessions, journal=CdrJournal(path)).flush() == 2
    assert sorted((cdr.call_id, cdr.dialed) for cdr in all_cdrs(sessions)) == [
        ("call-1@192.0.2.1", None), ("call-2@192.0.2.1", "2000")]


def test_a_torn_last_line_is_skipped(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "journal"
    writer = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    writer.add(call_ended(1))
    writer.sync()
    with path.open("ab") as journal:
        journal.write(b'{"call_id": "call-2@192.0.2.1", "cal')

    restarted = CdrWriter(sessions=sessions, journal=CdrJournal(path))
    assert restarted.flush() == 1


def test_one_sync_puts_a_batch_on_disk(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    journal = CdrJournal(tmp_path / "journal")
    writer = CdrWriter(sessions=sessions, journal=journal)
    for number in range(20):
        writer.add(call_ended(number))
    writer.sync()
    writer.sync()

    assert journal.syncs == 1
    assert len(journal.read()) == 20


def test_the_journal_is_private(tmp_path: Path) -> None:
    path = tmp_path / "cdr" / "journal"
    CdrJournal(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
