from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.bus import InProcessBus
from pbx_services.cluster.cdr import CdrWriter, talk_seconds
from pbx_services.cluster.dao import CdrDao
from pbx_services.cluster.events import CallEnded, Disposition, HangupBy
from pbx_services.cluster.models import Cdr, Tenant

from .conftest import DEFAULT_DOMAIN

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def call_ended(number: int, *, tenant_id: int | None = None, answered: bool = True) -> CallEnded:
    return CallEnded(
        call_id=f"call-{number}@192.0.2.1",
        tenant_id=tenant_id,
        caller="1001",
        callee=f"{2000 + number}",
        caller_ip="192.0.2.1",
        start_time=START,
        answer_time=START + timedelta(seconds=5) if answered else None,
        end_time=START + timedelta(seconds=65.4),
        disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
        sip_code=200 if answered else 480,
        hangup_by=HangupBy.CALLEE if answered else None,
    )


def all_cdrs(sessions: sessionmaker[Session]) -> list[Cdr]:
    with sessions() as session:
        return CdrDao(session=session).find_all_by()


def test_talk_seconds() -> None:
    assert talk_seconds(call_ended(1)) == 60
    assert talk_seconds(call_ended(1, answered=False)) == 0


def test_nothing_is_written_before_flush(sessions: sessionmaker[Session]) -> None:
    writer = CdrWriter(sessions=sessions)

    writer.add(call_ended(1))
    writer.add(call_ended(2))

    assert writer.pending == 2
    assert all_cdrs(sessions) == []


def test_flush_writes_the_batch(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> None:
    tenant_id = tenants[DEFAULT_DOMAIN].id
    writer = CdrWriter(sessions=sessions)
    writer.add(call_ended(1, tenant_id=tenant_id))
    writer.add(call_ended(2, answered=False))

    assert writer.flush() == 2

    assert writer.pending == 0
    answered, missed = all_cdrs(sessions)
    assert (answered.call_id, answered.tenant_id, answered.callee) == ("call-1@192.0.2.1", tenant_id, "2001")
    assert (answered.disposition, answered.sip_code, answered.hangup_by) == (
        Disposition.ANSWERED,
        200,
        HangupBy.CALLEE,
    )
    assert (answered.start_time, answered.answer_time) == (START, START + timedelta(seconds=5))
    assert answered.end_time == START + timedelta(seconds=65.4)
    assert answered.duration == 60
    assert (missed.disposition, missed.answer_time, missed.hangup_by, missed.duration) == (
        Disposition.NO_ANSWER,
        None,
        None,
        0,
    )
    assert writer.flush() == 0


def test_ready_made_cdr_rows_are_accepted(sessions: sessionmaker[Session]) -> None:
    writer = CdrWriter(sessions=sessions)
    writer.add(
        Cdr(
            call_id="x",
            caller="1001",
            callee="1002",
            caller_ip="192.0.2.9",
            start_time=START,
            end_time=START,
            disposition=Disposition.CANCELLED,
            sip_code=487,
            duration=0,
        )
    )

    writer.flush()

    (stored,) = all_cdrs(sessions)
    assert (stored.call_id, stored.disposition, stored.tenant_id) == ("x", Disposition.CANCELLED, None)


def test_failed_flush_keeps_the_records(sessions: sessionmaker[Session]) -> None:
    writer = CdrWriter(sessions=sessions)
    writer.add(call_ended(1))
    writer.add(call_ended(2, tenant_id=999))  # no such tenant: the whole batch fails

    with pytest.raises(IntegrityError):
        writer.flush()

    assert writer.pending == 2
    assert all_cdrs(sessions) == []


def test_writer_records_every_call_from_the_bus(sessions: sessionmaker[Session]) -> None:
    bus = InProcessBus()
    writer = CdrWriter(sessions=sessions)
    bus.subscribe(CallEnded, writer.add)

    for number in range(1, 1001):
        bus.publish(call_ended(number))
    writer.flush()

    assert len(all_cdrs(sessions)) == 1000
