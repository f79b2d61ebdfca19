"""The connection table on a passed-in clock: who is admitted, who makes room, who is past a deadline."""

from __future__ import annotations

import logging

import pytest

from pbx_services.transport.connections import CloseLog, CloseReason, ConnectionLimits, ConnectionTable

LIMITS = ConnectionLimits(max_connections=4, max_per_source=2, first_message_timeout=10.0, idle_timeout=300.0,
                          outbound_headroom=1)


def _table() -> ConnectionTable[str]:
    return ConnectionTable(LIMITS)


def test_a_source_at_its_limit_is_refused_and_others_are_not() -> None:
    table = _table()
    assert table.admit("a1", "10.0.0.1", 0.0) is None
    assert table.admit("a2", "10.0.0.1", 0.0) is None
    assert table.admit("a3", "10.0.0.1", 0.0) == ("a3", CloseReason.PER_SOURCE_LIMIT)
    assert table.admit("b1", "10.0.0.2", 0.0) is None
    assert len(table) == 3 and "a3" not in table
    table.remove("a1")
    assert table.admit("a3", "10.0.0.1", 1.0) is None  # its place freed


def test_a_full_table_makes_room_by_closing_the_oldest_connection_that_said_nothing() -> None:
    table = _table()
    for index, name in enumerate(("a1", "a2", "b1", "b2")):
        table.admit(name, "10.0.0.1" if name[0] == "a" else "10.0.0.2", float(index))
    table.spoke("a1", 5.0)  # a phone: it sent its REGISTER
    assert table.admit("c1", "10.0.0.3", 6.0) == ("a2", CloseReason.GLOBAL_LIMIT)
    assert "a2" not in table and "c1" in table and len(table) == 4
    assert table.admit("c2", "10.0.0.3", 6.0) == ("b1", CloseReason.GLOBAL_LIMIT)


def test_a_full_table_of_connections_that_spoke_refuses_the_new_one() -> None:
    table = _table()
    for name in ("a1", "a2", "b1", "b2"):
        table.admit(name, "10.0.0.1" if name[0] == "a" else "10.0.0.2", 0.0)
        table.spoke(name, 1.0)
    assert table.admit("c1", "10.0.0.3", 2.0) == ("c1", CloseReason.GLOBAL_LIMIT)
    assert len(table) == 4


def test_connections_we_open_use_the_headroom_then_make_room_too() -> None:
    table = _table()
    for name in ("a1", "a2", "b1", "b2"):
        table.admit(name, "10.0.0.1" if name[0] == "a" else "10.0.0.2", 0.0)
        table.spoke(name, 0.0)
    assert table.admit("out1", None, 1.0) is None  # a response to send: past the cap, in the headroom
    assert len(table) == 5
    assert table.admit("out2", None, 1.0) == ("out2", CloseReason.GLOBAL_LIMIT)  # the headroom is full
    assert table.admit("c1", "10.0.0.3", 1.0) == ("c1", CloseReason.GLOBAL_LIMIT)


def test_a_connection_that_never_completes_a_message_is_due_at_the_first_message_deadline() -> None:
    table = _table()
    table.admit("slow", "10.0.0.1", 0.0)
    table.admit("phone", "10.0.0.2", 2.0)
    table.spoke("phone", 2.5)
    assert table.expired(9.9) == []
    assert table.expired(10.0) == [("slow", CloseReason.FIRST_MESSAGE_DEADLINE)]
    assert "slow" not in table and "phone" in table
    assert table.expired(11.0) == []


def test_idle_timeout_counts_from_the_last_message_and_a_keepalive_resets_it() -> None:
    table = _table()
    table.admit("idle", "10.0.0.1", 0.0)
    table.admit("pinging", "10.0.0.2", 0.0)
    table.spoke("idle", 1.0)
    table.spoke("pinging", 1.0)
    table.spoke("pinging", 200.0)  # a CRLFCRLF keep-alive
    assert table.expired(300.9) == []
    assert table.expired(301.0) == [("idle", CloseReason.IDLE_TIMEOUT)]
    assert table.expired(499.0) == []
    assert table.expired(500.0) == [("pinging", CloseReason.IDLE_TIMEOUT)]
    assert len(table) == 0


def test_connections_we_open_are_idle_from_their_opening_and_never_wait_for_a_first_message() -> None:
    table = _table()
    table.admit("out", None, 0.0)
    assert table.expired(100.0) == []
    assert table.expired(300.0) == [("out", CloseReason.IDLE_TIMEOUT)]


def test_removing_twice_or_after_expiry_changes_nothing() -> None:
    table = _table()
    table.admit("a1", "10.0.0.1", 0.0)
    table.admit("a2", "10.0.0.1", 0.0)
    assert table.expired(10.0) == [("a1", CloseReason.FIRST_MESSAGE_DEADLINE),
                                   ("a2", CloseReason.FIRST_MESSAGE_DEADLINE)]
    table.remove("a1")  # the transport's connection_lost, later
    table.remove("a1")
    table.spoke("a2", 11.0)  # bytes that were on their way
    assert len(table) == 0
    assert table.admit("a3", "10.0.0.1", 12.0) is None
    assert table.admit("a4", "10.0.0.1", 12.0) is None  # the source's count went back to 0


def test_close_log_says_a_burst_in_one_line_per_reason_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.close_log")
    close_log = CloseLog(logger=logger, what="SIP over TCP", interval=10.0)
    with caplog.at_level(logging.WARNING, logger="test.close_log"):
        for n in range(1000):
            close_log.note(CloseReason.GLOBAL_LIMIT, f"10.0.0.{n % 250}", 1.0 + n / 1000)
        close_log.note(CloseReason.PER_SOURCE_LIMIT, "10.0.0.9", 2.0)
        close_log.flush(5.0)
        assert len(caplog.records) == 2  # the first of each reason at once
        close_log.flush(11.0)
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == "closed 1 SIP over TCP connection (global_limit), the last from 10.0.0.0"
    assert messages[1] == "closed 1 SIP over TCP connection (per_source_limit), the last from 10.0.0.9"
    assert messages[2] == ("closed 999 SIP over TCP connections (global_limit) in the last 10 s, "
                           "the last from 10.0.0.249")
    assert len(messages) == 3
