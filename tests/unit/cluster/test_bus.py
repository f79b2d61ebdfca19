import logging
from datetime import UTC, datetime

import pytest

from pbx_services.cluster.bus import EventBus, InProcessBus
from pbx_services.cluster.events import CallAnswered, CallStarted

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ANSWERED = CallAnswered(call_id="c1", time=NOW)
STARTED = CallStarted(
    call_id="c1", tenant_id=1, caller="1001", callee="1002", caller_ip="192.0.2.1", time=NOW
)


def test_handlers_get_events_of_their_type_only() -> None:
    bus: EventBus = InProcessBus()
    answered: list[CallAnswered] = []
    started: list[CallStarted] = []
    bus.subscribe(CallAnswered, answered.append)
    bus.subscribe(CallStarted, started.append)

    bus.publish(STARTED)
    bus.publish(ANSWERED)
    bus.publish("not an event anyone wants")

    assert (answered, started) == ([ANSWERED], [STARTED])


def test_every_subscriber_is_called_in_order() -> None:
    bus = InProcessBus()
    calls: list[str] = []
    bus.subscribe(CallAnswered, lambda event: calls.append("first"))
    bus.subscribe(CallAnswered, lambda event: calls.append("second"))

    bus.publish(ANSWERED)

    assert calls == ["first", "second"]


def test_unsubscribe() -> None:
    bus = InProcessBus()
    received: list[CallAnswered] = []
    unsubscribe = bus.subscribe(CallAnswered, received.append)

    unsubscribe()
    unsubscribe()
    bus.publish(ANSWERED)

    assert received == []


def test_a_failing_handler_neither_stops_the_others_nor_reaches_the_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = InProcessBus()
    received: list[CallAnswered] = []

    def broken(event: CallAnswered) -> None:
        raise RuntimeError("boom")

    bus.subscribe(CallAnswered, broken)
    bus.subscribe(CallAnswered, received.append)

    with caplog.at_level(logging.ERROR, logger="pbx_services.cluster.bus"):
        bus.publish(ANSWERED)

    assert received == [ANSWERED]
    assert "boom" in caplog.text


def test_handler_may_unsubscribe_while_called() -> None:
    bus = InProcessBus()
    received: list[CallAnswered] = []

    def once(event: CallAnswered) -> None:
        received.append(event)
        unsubscribe()

    unsubscribe = bus.subscribe(CallAnswered, once)

    bus.publish(ANSWERED)
    bus.publish(ANSWERED)

    assert received == [ANSWERED]
