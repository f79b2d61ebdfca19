"""Tests for pbx_services/sip/stack.py: refused and dropped input is counted, and the refusals are
logged at most once per source address and minute."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from pbx_services.sip.stack import SipStack

DATA = Path(__file__).parents[2] / "data" / "sip"
REFUSED = (DATA / "invalid" / "cseq_not_a_number.txt").read_bytes()
"""A REGISTER whose CSeq is not a number: answered 400."""
UNANSWERABLE = (DATA / "invalid" / "missing_via.txt").read_bytes()
"""A request with no Via: no answer can reach its sender, so it is dropped."""
SCANNER = ("192.0.2.66", 5060)


@pytest.fixture
def stack() -> SipStack:
    return SipStack(host="127.0.0.1", port=5060, max_message_size=65535)


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "pbx_services.sip.stack" and record.levelno >= logging.INFO]


def test_both_counters_are_there_before_anything_is_received(stack: SipStack) -> None:
    assert dict(stack.counters) == {"refused_requests": 0, "dropped_garbage": 0}


def test_every_refusal_is_answered_and_counted_but_logged_once_a_minute_per_source(
        stack: SipStack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    for index in range(1000):
        assert stack.receive(REFUSED, (SCANNER[0], 5060 + index % 7), "UDP", now=10.0 + index * 0.05) == []
        assert stack.receive(UNANSWERABLE, SCANNER, "UDP", now=10.0 + index * 0.05) == []

    assert stack.counters["refused_requests"] == 1000
    assert stack.counters["dropped_garbage"] == 1000
    assert [transmit.data.split(b"\r\n", 1)[0] for transmit in stack.take_transmits()] == (
        [b"SIP/2.0 400 Bad Request"] * 1000)
    # 50 s of refusals, then one more a minute after the first.
    stack.receive(REFUSED, SCANNER, "UDP", now=70.0)
    assert refusal_lines(caplog) == [
        "refused request from 192.0.2.66:5060 with 400: malformed CSeq: '29281a REGISTER'",
        "refused request from 192.0.2.66:5060 with 400: malformed CSeq: '29281a REGISTER' "
        "(and 999 more from 192.0.2.66 not logged in the last 60 s)",
    ]


def test_ten_thousand_fuzzed_datagrams_log_a_line_per_source(stack: SipStack,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """What a fuzzer sends within a minute from a few addresses: every request that can be
    answered is (one log line each before the limit), but the log has a line per address."""
    caplog.set_level(logging.INFO)
    valid = (DATA / "kamailio_options.txt").read_bytes()
    fuzz = random.Random(4475)
    sources = [(f"198.51.100.{index}", 5060) for index in range(5)]

    for index in range(10_000):
        datagram = bytearray(valid)
        for _ in range(fuzz.randint(1, 8)):
            datagram[fuzz.randrange(len(datagram))] = fuzz.randrange(256)
        stack.receive(bytes(datagram), sources[index % len(sources)], "UDP", now=index * 0.005)

    refused = stack.counters["refused_requests"]
    assert refused > 1000, dict(stack.counters)
    assert len(refusal_lines(caplog)) == len(sources)
