import dataclasses
from datetime import UTC, datetime

import pytest

from pbx_services.cluster.events import CallEnded, Disposition, HangupBy, RegistrationChanged

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_events_are_frozen_and_keyword_only() -> None:
    event = RegistrationChanged(
        tenant_id=1,
        extension="1001",
        contact="sip:1001@192.0.2.1:5060",
        source_address="192.0.2.1:5060",
        expires=3600,
        time=NOW,
    )

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.expires = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        RegistrationChanged(1, "1001", "sip:x", "192.0.2.1:5060", 3600, NOW)  # type: ignore[misc]


def test_call_ended_carries_enums_that_are_strings() -> None:
    event = CallEnded(
        call_id="c1",
        tenant_id=None,
        caller="+33100000000",
        callee="1001",
        caller_ip="192.0.2.1",
        start_time=NOW,
        answer_time=None,
        end_time=NOW,
        disposition=Disposition.BUSY,
        sip_code=486,
        hangup_by=None,
    )

    assert event.disposition == "BUSY"
    assert HangupBy("callee") is HangupBy.CALLEE
    assert [member.value for member in Disposition] == [
        "ANSWERED",
        "NO_ANSWER",
        "BUSY",
        "FAILED",
        "CANCELLED",
    ]
