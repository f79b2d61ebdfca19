"""The portal's alert runner (`portal/alerting.py`) on a real Redis (its bus and lease), a SQLite
database and a real SMTP server (aiosmtpd), with short group and lease times: one e-mail per
change, one sender among several runners, a hand-over that neither re-sends nor misses, retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster import alert_mail
from pbx_services.cluster.config import PbxConfig, build_config
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.events import ServerState, ServerStateChanged
from pbx_services.cluster.models import AlertEmail, AlertEngineState, AlertRecord, EmailDelivery
from pbx_services.cluster.redis_bus import RedisStreamBus
from pbx_services.portal.alerting import HISTORY_DAYS, AlertRunner
from tests.redis_server import RedisServer
from tests.smtp_server import SmtpServer, free_port

LEASE_TTL = 1.0
RENEW = 0.2


@pytest.fixture
def db_url(sessions: sessionmaker[Session]) -> str:
    """The portal tests' migrated SQLite database."""
    return str(sessions.kw["bind"].url)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def bus(redis_server: RedisServer) -> RedisStreamBus:
    redis_server.client().flushall()
    return RedisStreamBus(redis_server.client())


def alert_config(db_url: str, redis_url: str, smtp_port: int) -> PbxConfig:
    return build_config({
        "database": {"url": db_url}, "state": {"url": redis_url},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout": 2},
        "alerts": {"recipients": ["ops@example.com"], "group_wait": 0.3, "group_interval": 0.6,
                   "repeat_interval": 3600},
    }, env={}, needs_auth=False)


@pytest.fixture
def runners(db_url: str, redis_server: RedisServer, smtp: SmtpServer
            ) -> Iterator[Callable[..., AlertRunner]]:
    """`runners(name)`: a started runner; all stopped at the end."""
    started: list[AlertRunner] = []

    def start(name: str, smtp_port: int | None = None) -> AlertRunner:
        config = alert_config(db_url, redis_server.url, smtp_port or smtp.port)
        runner = AlertRunner(config, name=name, lease_ttl=LEASE_TTL, renew_interval=RENEW)
        runner.start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


def publish(bus: RedisStreamBus, server: str, state: ServerState, role: str = "ivr") -> None:
    bus.publish(ServerStateChanged(server=server, role=role, state=state, reason=f"test: {state.value}",
                                   time=datetime.now(UTC)))


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def rows(db_url: str, model: type) -> list:  # type: ignore[type-arg]
    engine = create_engine_for(db_url)
    try:
        with session_factory(engine)() as session:
            return list(session.scalars(select(model).order_by(model.id)))
    finally:
        engine.dispose()


def test_one_email_when_a_server_goes_down_and_one_when_it_is_back(
        runners: Callable[..., AlertRunner], bus: RedisStreamBus, smtp: SmtpServer, db_url: str) -> None:
    runner = runners("portal-a")
    wait_until(lambda: runner.is_sender and rows(db_url, AlertEngineState))
    publish(bus, "ivr1", ServerState.DOWN)
    [(recipients, firing)] = smtp.inbox.wait(1, timeout=5)
    assert recipients == ["ops@example.com"]
    assert firing["Subject"] == "[FIRING:1] ivr server down: ivr1"
    assert "ivr1 (ivr): down since" in firing.get_content() and "test: down" in firing.get_content()
    [record] = rows(db_url, AlertRecord)
    assert (record.role, record.server, record.state, record.resolved_at) == ("ivr", "ivr1", "down", None)

    time.sleep(1.5)  # several looks of the group: still down, nothing new to say
    assert len(smtp.inbox.messages) == 1
    publish(bus, "ivr1", ServerState.UP)
    messages = smtp.inbox.wait(2, timeout=5)
    assert [m["Subject"] for _, m in messages] == ["[FIRING:1] ivr server down: ivr1",
                                                   "[RESOLVED] ivr server back up: ivr1"]
    [record] = rows(db_url, AlertRecord)
    assert record.resolved_at is not None and record.resolved_at >= record.since
    emails = rows(db_url, AlertEmail)
    assert [(e.status, e.delivery, e.attempts, e.sent_by) for e in emails] == [
        ("firing", EmailDelivery.SENT, 1, "portal-a"), ("resolved", EmailDelivery.SENT, 1, "portal-a")]
    time.sleep(1.5)
    assert len(smtp.inbox.messages) == 2


def test_of_two_runners_one_sends(runners: Callable[..., AlertRunner], bus: RedisStreamBus, smtp: SmtpServer,
                                  db_url: str) -> None:
    first, second = runners("portal-a"), runners("portal-b")
    wait_until(lambda: first.is_sender or second.is_sender)
    time.sleep(3 * RENEW)
    assert [first.is_sender, second.is_sender].count(True) == 1
    publish(bus, "ivr1", ServerState.DOWN)
    publish(bus, "ivr2", ServerState.DOWN)
    smtp.inbox.wait(1, timeout=5)
    time.sleep(2)
    assert [m["Subject"] for _, m in smtp.inbox.messages] == ["[FIRING:2] ivr servers down: ivr1, ivr2"]
    assert len(rows(db_url, AlertRecord)) == 2


def test_a_new_sender_takes_on_without_sending_again_or_missing_a_change(
        runners: Callable[..., AlertRunner], bus: RedisStreamBus, smtp: SmtpServer, db_url: str) -> None:
    first = runners("portal-a")
    wait_until(lambda: first.is_sender and rows(db_url, AlertEngineState))
    second = runners("portal-b")
    publish(bus, "ivr1", ServerState.DOWN)
    smtp.inbox.wait(1, timeout=5)
    first.stop()  # its lease lapses; the change below comes while nobody holds it
    publish(bus, "ivr1", ServerState.UP)
    wait_until(lambda: second.is_sender, timeout=LEASE_TTL + 5)
    messages = smtp.inbox.wait(2, timeout=5)
    time.sleep(1.5)
    assert [m["Subject"] for _, m in messages] == ["[FIRING:1] ivr server down: ivr1",
                                                   "[RESOLVED] ivr server back up: ivr1"]
    assert [e.sent_by for e in rows(db_url, AlertEmail)] == ["portal-a", "portal-b"]
    [state] = rows(db_url, AlertEngineState)
    assert state.saved_by == "portal-b"


def test_a_sender_whose_state_was_saved_by_another_stops_and_loads_it_again(
        runners: Callable[..., AlertRunner], bus: RedisStreamBus, smtp: SmtpServer, db_url: str) -> None:
    runner = runners("portal-a")
    wait_until(lambda: runner.is_sender and rows(db_url, AlertEngineState))
    engine = create_engine_for(db_url)
    with session_factory(engine).begin() as session:  # as a portal that took over meanwhile would
        session.execute(update(AlertEngineState).values(version=AlertEngineState.version + 1))
    engine.dispose()
    publish(bus, "ivr1", ServerState.DOWN)
    wait_until(lambda: not runner.is_sender, timeout=5)
    # Once it holds the lease again, it goes on from the saved state: the event is not lost.
    assert [m["Subject"] for _, m in smtp.inbox.wait(1, timeout=LEASE_TTL + 10)] == [
        "[FIRING:1] ivr server down: ivr1"]


def test_a_failed_sending_is_retried_then_given_up(
        runners: Callable[..., AlertRunner], bus: RedisStreamBus, db_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alert_mail, "RETRY_DELAYS", (0.5, 0.5))
    port = free_port()  # nothing listens there yet
    runner = runners("portal-a", smtp_port=port)
    wait_until(lambda: runner.is_sender and rows(db_url, AlertEngineState))
    publish(bus, "ivr1", ServerState.DOWN)
    wait_until(lambda: [e.last_error is not None for e in rows(db_url, AlertEmail)] == [True])
    [email] = rows(db_url, AlertEmail)
    assert (email.delivery, email.attempts) == (EmailDelivery.PENDING, 1)
    assert "Connection refused" in (email.last_error or "")
    late = SmtpServer(port=port)
    try:
        [(_, message)] = late.inbox.wait(1, timeout=5)
    finally:
        late.stop()
    assert message["Subject"] == "[FIRING:1] ivr server down: ivr1"
    [email] = rows(db_url, AlertEmail)
    assert (email.delivery, email.attempts, email.last_error) == (EmailDelivery.SENT, 2, None)

    publish(bus, "ivr1", ServerState.UP)  # the server is gone again: tried three times, then given up
    wait_until(lambda: rows(db_url, AlertEmail)[-1].delivery is EmailDelivery.FAILED, timeout=10)
    assert rows(db_url, AlertEmail)[-1].attempts == 3


def test_without_state_url_the_runner_refuses_naming_the_key(db_url: str) -> None:
    config = build_config({"database": {"url": db_url}}, env={}, needs_auth=False)
    with pytest.raises(ValueError, match="state.url"):
        AlertRunner(config)


def test_the_sender_deletes_the_history_older_than_its_retention(
        runners: Callable[..., AlertRunner], db_url: str) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=HISTORY_DAYS + 1)
    engine = create_engine_for(db_url)
    with session_factory(engine).begin() as session:
        session.add_all([
            AlertRecord(role="ivr", server="old", state="down", reason="", since=long_ago,
                        resolved_at=long_ago),
            AlertRecord(role="ivr", server="still-down", state="down", reason="", since=long_ago),
            AlertEmail(created_at=long_ago, role="ivr", status="firing", servers_down="old", servers_back="",
                       subject="old", body="", recipients="ops@example.com", delivery=EmailDelivery.FAILED,
                       attempts=5, next_attempt_at=long_ago),
        ])
    engine.dispose()
    runner = runners("portal-a")
    wait_until(lambda: runner.is_sender and [r.server for r in rows(db_url, AlertRecord)] == ["still-down"])
    assert rows(db_url, AlertEmail) == []


def test_an_unreachable_redis_is_logged_once_not_once_a_second(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    config = alert_config(db_url, f"redis://127.0.0.1:{free_port()}/0", free_port())
    runner = AlertRunner(config, name="portal-a", lease_ttl=LEASE_TTL, renew_interval=RENEW)
    with caplog.at_level(logging.ERROR, logger="pbx_services.portal.alerting"):
        runner.start()
        time.sleep(3.5)
        runner.stop()
    errors = [r.getMessage() for r in caplog.records if r.name == "pbx_services.portal.alerting"]
    assert len(errors) == 1 and "trying again" in errors[0], errors
    assert not runner.is_sender
