"""Tests for pbx_services/sip/refusal_log.py: one line per source address and interval, bounded."""

from __future__ import annotations

import logging

import pytest

from pbx_services.sip.refusal_log import RefusalLog

LOGGER = logging.getLogger("test.refusals")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    logged = [record.getMessage() for record in caplog.records if record.name == LOGGER.name]
    caplog.clear()
    return logged


@pytest.fixture(autouse=True)
def info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)


def test_the_first_refusal_from_a_source_is_logged_then_counted_until_the_interval_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(logger=LOGGER, interval=60.0)

    refusals.refused(("192.0.2.7", 5060), 400, "CSeq is not a number", now=100.0)
    assert lines(caplog) == ["refused request from 192.0.2.7:5060 with 400: CSeq is not a number"]

    for second in range(1, 60):  # another port of the same address is the same source
        refusals.refused(("192.0.2.7", 5061), 400, "Via has no sent-by", now=100.0 + second)
    assert lines(caplog) == []

    refusals.refused(("192.0.2.7", 5062), 513, "message is larger than 65535 bytes", now=160.0)
    assert lines(caplog) == ["refused request from 192.0.2.7:5062 with 513: message is larger than 65535 "
                             "bytes (and 59 more from 192.0.2.7 not logged in the last 60 s)"]

    refusals.refused(("192.0.2.7", 5062), 400, "bad", now=230.0)
    assert lines(caplog) == ["refused request from 192.0.2.7:5062 with 400: bad"]


def test_each_source_has_its_own_line(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(logger=LOGGER)

    for _ in range(3):
        refusals.refused(("192.0.2.1", 5060), 400, "bad", now=0.0)
        refusals.refused(("2001:db8::1", 5060), 400, "bad", now=0.0)

    assert lines(caplog) == ["refused request from 192.0.2.1:5060 with 400: bad",
                             "refused request from 2001:db8::1:5060 with 400: bad"]


def test_a_spoofed_source_flood_keeps_the_table_bounded_and_shares_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(logger=LOGGER, interval=60.0, max_sources=4)

    for index in range(10_000):
        refusals.refused((f"198.51.{index // 256}.{index % 256}", 5060), 400, "bad", now=index * 0.001)

    assert len(refusals) == 4
    assert lines(caplog) == [
        *(f"refused request from 198.51.0.{index}:5060 with 400: bad" for index in range(4)),
        "refused request from 198.51.0.4:5060 with 400: bad (more than 4 sources within 60 s: refusals "
        "from the others share one line per 60 s)",
    ]

    # Once the interval has passed, the sources logged longest ago make room again...
    refusals.refused(("203.0.113.1", 5060), 400, "bad", now=70.0)
    assert lines(caplog) == ["refused request from 203.0.113.1:5060 with 400: bad"]
    assert len(refusals) == 4
    # ...and the next line for the others says how many were not logged.
    for index in range(4):
        refusals.refused((f"203.0.113.{10 + index}", 5060), 400, "bad", now=70.0)
    refusals.refused(("203.0.113.99", 5060), 400, "bad", now=71.0)
    assert lines(caplog) == [
        *(f"refused request from 203.0.113.{10 + index}:5060 with 400: bad" for index in range(3)),
        "refused request from 203.0.113.13:5060 with 400: bad (and 9995 more from other sources not logged "
        "in the last 70 s)",
    ]
