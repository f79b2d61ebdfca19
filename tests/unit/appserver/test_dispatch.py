"""Two applications on one worker: each call's events go to the application of its number."""

from __future__ import annotations

from types import SimpleNamespace

from pbx_services.appserver.dispatch import ByNumber
from tests.unit.appserver.test_core import FakeApplication


def test_each_number_goes_to_its_application() -> None:
    menus, voicemail = FakeApplication(), FakeApplication()
    voicemail.refused["vm*9"] = (404, "No Such Mailbox")
    menus.counters = {"menu_calls": 2}  # type: ignore[attr-defined]
    voicemail.counters = {"voicemail_deposits": 1}  # type: ignore[attr-defined]
    both = ByNumber(default=menus, routes=[(lambda number: number.startswith("vm*"), voicemail)])

    assert both.refusal("vm*9", "pbx.local", 0.0) == (404, "No Such Mailbox")
    assert both.refusal("800", "pbx.local", 0.0) is None
    for number in ("800", "vm*1002"):
        call = SimpleNamespace(call_id=number, number=number, domain="pbx.local", caller="1001")
        both.call_started(call, 1.0)  # type: ignore[arg-type]
        both.digits(call, ["1"], 2.0)  # type: ignore[arg-type]
        both.playback_finished(call, 3.0)  # type: ignore[arg-type]
        both.transfer_failed(call, 486, 4.0)  # type: ignore[arg-type]
        both.call_ended(call, 5.0)  # type: ignore[arg-type]

    assert {event[1] for event in menus.take()} == {"800"}
    assert {event[1] for event in voicemail.take()} == {"vm*1002"}
    assert both.counters == {"menu_calls": 2, "voicemail_deposits": 1}
