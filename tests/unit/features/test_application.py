"""Forwarding and do-not-disturb from the phone (`features.application`), driven as the frame
drives it: each service number changes the caller's setting in the system of record and says
so; *72 alone asks for the number; a number that reaches nothing changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.forwarding import ForwardingService
from pbx_services.features.application import (
    CONFIRMATION,
    DIGIT_TIMEOUT,
    FeatureCodeApplication,
    is_feature_number,
)
from pbx_services.runtime.timers import TimerQueue
from tests.unit.voicemail import conftest as voicemail_fixtures
from tests.unit.voicemail.conftest import DOMAIN
from tests.unit.voicemail.test_application import FakeCall, Voice

START = 1000.0
sessions = voicemail_fixtures.sessions
"""A fresh database with users 1001 and 1002."""


@pytest.fixture
def forwarding(sessions: sessionmaker[Session]) -> ForwardingService:
    return ForwardingService(sessions=sessions, default_domain=DOMAIN)


@pytest.fixture
def voice() -> Voice:
    return Voice()


@pytest.fixture
def application(forwarding: ForwardingService, voice: Voice) -> FeatureCodeApplication:
    return FeatureCodeApplication(forwarding=forwarding, announcements=voice.announcements)


def dial(application: FeatureCodeApplication, number: str, timers: TimerQueue) -> FakeCall:
    call = FakeCall(number=number, caller="1002", timers=timers)
    application.call_started(call, START)  # type: ignore[arg-type]
    return call


def test_the_numbers_it_answers() -> None:
    assert all(is_feature_number(n) for n in ("*72", "*721001", "*73", "*78", "*79"))
    assert not any(is_feature_number(n) for n in ("*97", "*45", "*8", "**1002", "1005", "*7"))


def test_do_not_disturb_on_and_off(application: FeatureCodeApplication, forwarding: ForwardingService,
                                   voice: Voice) -> None:
    timers = TimerQueue()
    call = dial(application, "*78", timers)

    assert forwarding.get("1002").dnd
    [[tone, sentence]] = call.played
    assert tone is CONFIRMATION and voice.said(sentence) == "Do not disturb is on."
    application.playback_finished(call, START + 3)  # type: ignore[arg-type]
    assert call.hung_up

    dial(application, "*79", timers)
    assert not forwarding.get("1002").dnd
    assert application.counters["feature_code_changes"] == 2


def test_forward_always_with_the_number_in_the_dial_string_then_off(
        application: FeatureCodeApplication, forwarding: ForwardingService, voice: Voice) -> None:
    timers = TimerQueue()
    call = dial(application, "*721001", timers)

    assert forwarding.get("1002").always == "1001"
    assert voice.said(call.played[0][1]) == "Your calls are forwarded to 1 0 0 1."

    dial(application, "*73", timers)
    assert forwarding.get("1002").always is None


def test_forward_always_asks_for_the_number(application: FeatureCodeApplication,
                                            forwarding: ForwardingService, voice: Voice) -> None:
    timers = TimerQueue()
    call = dial(application, "*72", timers)
    assert voice.said(call.played[0][0]).startswith("Please enter the number")

    application.digits(call, ["1", "0", "0"], START + 1)  # type: ignore[arg-type]
    application.digits(call, ["1", "#"], START + 2)  # type: ignore[arg-type]

    assert forwarding.get("1002").always == "1001"


def test_a_pause_ends_the_number_asked_for(application: FeatureCodeApplication,
                                           forwarding: ForwardingService) -> None:
    timers = TimerQueue()
    call = dial(application, "*72", timers)
    application.digits(call, list("1001"), START + 1)  # type: ignore[arg-type]

    timers.run_due(START + 1 + DIGIT_TIMEOUT)

    assert forwarding.get("1002").always == "1001"


def test_a_number_that_reaches_nothing_changes_nothing(application: FeatureCodeApplication,
                                                        forwarding: ForwardingService, voice: Voice) -> None:
    call = dial(application, "*729999", TimerQueue())

    assert forwarding.get("1002").always is None
    assert voice.said(call.played[0][0]) == "9 9 9 9 cannot take your calls. Nothing was changed. Goodbye."
    assert application.counters["feature_code_refusals"] == 1


def test_a_caller_that_is_no_user_is_told(application: FeatureCodeApplication, voice: Voice) -> None:
    call = FakeCall(number="*78", caller="4242", timers=TimerQueue())
    application.call_started(call, START)  # type: ignore[arg-type]

    assert voice.said(call.played[0][0]).startswith("This phone has no user")


def test_other_numbers_are_refused(application: FeatureCodeApplication) -> None:
    assert application.refusal("*97", DOMAIN, START) == (404, "Not A Feature Code")
    assert application.refusal("*78", DOMAIN, START) is None
