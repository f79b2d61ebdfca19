"""The alert engine (`cluster/alerts.py`) on a fake clock, and the `alerts` config section."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pbx_services.cluster.alerts import AlertEngine, AlertTiming, Notification, NotificationStatus
from pbx_services.cluster.config import ConfigError, build_config
from pbx_services.cluster.events import ServerState, ServerStateChanged

MAIL_AND_BUS: dict[str, dict[str, object]] = {"smtp": {"host": "127.0.0.1"},
                                               "state": {"url": "redis://127.0.0.1:6379/0"}}
"""What alert recipients need beside them: a mail server, and the bus in Redis."""
TIMING = AlertTiming(group_wait=30, group_interval=300, repeat_interval=3600)
EPOCH = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    """Wall-clock seconds the test moves by hand; events carry the matching datetime."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._start = self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def time(self) -> datetime:
        return EPOCH + timedelta(seconds=self.now - self._start)


class Harness:
    """An engine, its clock, and every notification it gave so far (timers run as a loop would)."""

    def __init__(self, timing: AlertTiming = TIMING) -> None:
        self.clock = Clock()
        self.engine = AlertEngine(timing)
        self.sent: list[Notification] = []
        self.sent_at: list[float] = []

    def event(self, server: str, state: ServerState, role: str = "ivr", reason: str = "") -> None:
        self.engine.receive(ServerStateChanged(server=server, role=role, state=state, reason=reason,
                                               time=self.clock.time), self.clock.now)

    def run_for(self, seconds: float, step: float = 1.0) -> list[Notification]:
        """Move the clock `seconds` on by `step`, running the timers due; the notifications given."""
        given: list[Notification] = []
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.advance(min(step, end - self.clock.now))
            due = self.engine.next_timer()
            if due is not None and due <= self.clock.now:
                due_now = self.engine.handle_timer(self.clock.now)
                given += due_now
                self.sent_at += [self.clock.now] * len(due_now)
        self.sent += given
        return given


def servers(notification: Notification) -> tuple[list[str], list[str]]:
    return [a.server for a in notification.firing], [a.server for a in notification.resolved]


def test_a_server_down_is_notified_once_after_group_wait() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN, reason="2 OPTIONS unanswered")
    assert h.run_for(29) == []
    [notification] = h.run_for(1)
    assert notification.group == "ivr" and notification.status is NotificationStatus.FIRING
    assert servers(notification) == (["ivr1"], [])
    alert = notification.firing[0]
    assert (alert.state, alert.reason, alert.since, alert.resolved_at) == (
        ServerState.DOWN, "2 OPTIONS unanswered", EPOCH, None)
    assert not notification.repeated


def test_a_server_staying_down_is_not_notified_again_before_repeat_interval() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    assert len(h.run_for(30)) == 1
    assert h.run_for(3599) == []
    [reminder] = h.run_for(300)  # the first look at or after 3600 s
    assert reminder.repeated and servers(reminder) == (["ivr1"], [])


def test_the_reminder_comes_at_the_first_look_after_repeat_interval() -> None:
    h = Harness(AlertTiming(group_wait=10, group_interval=100, repeat_interval=250))
    h.event("ivr1", ServerState.DOWN)
    h.run_for(10)  # notified at 10
    h.run_for(300)  # looks at 110, 210, 310: the reminder at 310 (>= 260)
    assert [n.repeated for n in h.sent] == [False, True]
    assert [at - h.sent_at[0] for at in h.sent_at] == [0, 300]


def test_a_server_back_gets_one_resolved_notification_at_the_next_look() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.run_for(30)
    h.run_for(100)
    h.event("ivr1", ServerState.UP, reason="2 OPTIONS answered")
    assert h.run_for(199) == []
    [resolved] = h.run_for(1)  # 300 s after the first notification
    assert resolved.status is NotificationStatus.RESOLVED
    assert servers(resolved) == ([], ["ivr1"])
    assert resolved.resolved[0].resolved_at == EPOCH + timedelta(seconds=130)
    assert h.run_for(10_000) == []
    assert h.engine.next_timer() is None and h.engine.alerts() == []


def test_a_server_back_before_group_wait_costs_nothing() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.run_for(10)
    h.event("ivr1", ServerState.UP)
    assert h.run_for(10_000) == []
    assert h.engine.next_timer() is None


def test_servers_failing_together_go_out_in_one_notification() -> None:
    h = Harness()
    h.event("ivr2", ServerState.DOWN)
    h.run_for(5)
    h.event("ivr1", ServerState.DOWN)
    h.run_for(5)
    h.event("media1", ServerState.DOWN, role="media")
    notifications = h.run_for(40)
    assert [(n.group, servers(n)) for n in notifications] == [
        ("ivr", (["ivr1", "ivr2"], [])), ("media", (["media1"], []))]


def test_a_second_server_down_waits_for_the_groups_next_look() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.run_for(30)
    h.event("ivr2", ServerState.DOWN)
    assert h.run_for(299) == []
    [update] = h.run_for(1)
    assert servers(update) == (["ivr1", "ivr2"], []) and not update.repeated


def test_one_back_while_another_stays_down_is_a_firing_notification_listing_both() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.event("ivr2", ServerState.DOWN)
    h.run_for(30)
    h.event("ivr1", ServerState.UP)
    [update] = h.run_for(300)
    assert update.status is NotificationStatus.FIRING
    assert servers(update) == (["ivr2"], ["ivr1"])
    h.event("ivr2", ServerState.UP)
    [last] = h.run_for(300)
    assert last.status is NotificationStatus.RESOLVED and servers(last) == ([], ["ivr2"])


def test_a_flapping_server_costs_at_most_one_notification_per_group_interval() -> None:
    h = Harness()
    state = ServerState.DOWN
    for _ in range(3600 // 7):  # down and up every 7 s for an hour
        h.event("ivr1", state)
        state = ServerState.UP if state is ServerState.DOWN else ServerState.DOWN
        h.run_for(7)
    assert 1 <= len(h.sent) <= 1 + 3600 // 300
    gaps = [later - earlier for earlier, later in zip(h.sent_at, h.sent_at[1:], strict=False)]
    assert gaps and all(gap >= 300 for gap in gaps), gaps


def test_a_flapping_server_down_at_each_look_is_not_notified_again() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.run_for(30)
    for _ in range(20):  # back and down again between two looks, every time
        h.run_for(100)
        h.event("ivr1", ServerState.UP)
        h.run_for(100)
        h.event("ivr1", ServerState.DOWN)
        h.run_for(100)
    assert len(h.sent) == 2  # the first, and the reminder after an hour
    assert h.sent[1].repeated


def test_a_group_back_and_down_again_waits_for_the_look_after_the_resolved_one() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN)
    h.run_for(30)  # firing at 30
    h.event("ivr1", ServerState.UP)
    h.run_for(300)  # resolved at 330
    h.event("ivr1", ServerState.DOWN)
    assert h.run_for(299) == []  # not at 360 (group_wait): the empty group looks again at 630
    [again] = h.run_for(1)
    assert servers(again) == (["ivr1"], [])


def test_a_vrrp_fault_fires_and_master_or_backup_resolves() -> None:
    h = Harness()
    h.event("cm1", ServerState.BACKUP, role="callmanager")
    h.event("cm2", ServerState.MASTER, role="callmanager")
    assert h.engine.alerts() == []
    h.event("cm1", ServerState.FAULT, role="callmanager", reason="VI_1 was BACKUP")
    [fault] = h.run_for(30)
    assert fault.firing[0].state is ServerState.FAULT
    h.event("cm1", ServerState.BACKUP, role="callmanager")
    [back] = h.run_for(300)
    assert back.status is NotificationStatus.RESOLVED


def test_receive_returns_the_alert_it_changed() -> None:
    h = Harness()
    event = ServerStateChanged(server="ivr1", role="ivr", state=ServerState.DOWN, reason="a",
                               time=EPOCH)
    fired = h.engine.receive(event, h.clock.now)
    assert fired is not None and fired.firing and fired.since == EPOCH
    assert h.engine.receive(event, h.clock.now) is None  # the same again
    fault = h.engine.receive(ServerStateChanged(server="ivr1", role="ivr", state=ServerState.FAULT,
                                                reason="b", time=EPOCH + timedelta(seconds=5)), h.clock.now)
    assert fault is not None and (fault.state, fault.reason, fault.since) == (ServerState.FAULT, "b", EPOCH)
    up = ServerStateChanged(server="ivr1", role="ivr", state=ServerState.UP, reason="",
                            time=EPOCH + timedelta(seconds=9))
    resolved = h.engine.receive(up, h.clock.now)
    assert resolved is not None and resolved.resolved_at == EPOCH + timedelta(seconds=9)
    assert h.engine.receive(up, h.clock.now) is None
    assert h.engine.receive(ServerStateChanged(server="ivr9", role="ivr", state=ServerState.UP, reason="",
                                               time=EPOCH), h.clock.now) is None


def test_servers_of_the_same_name_in_two_roles_are_two_alerts() -> None:
    h = Harness()
    h.event("host1", ServerState.DOWN, role="ivr")
    h.event("host1", ServerState.DOWN, role="queue")
    assert [n.group for n in h.run_for(30)] == ["ivr", "queue"]


def test_a_restored_engine_goes_on_where_the_snapshot_was_taken() -> None:
    h = Harness()
    h.event("ivr1", ServerState.DOWN, reason="gone")
    h.run_for(30)
    h.event("ivr2", ServerState.DOWN)
    h.event("ivr1", ServerState.UP)
    data = json.loads(json.dumps(h.engine.snapshot()))  # through JSON, as it is stored
    restored = AlertEngine.restore(data, TIMING)
    assert restored.alerts() == h.engine.alerts()
    assert restored.next_timer() == h.engine.next_timer()
    # Nothing new is sent again: the next look tells only what changed since the first notification.
    look = restored.next_timer()
    assert look == h.clock.now + 300
    assert restored.handle_timer(look - 1) == []
    [update] = restored.handle_timer(look)
    assert servers(update) == (["ivr2"], ["ivr1"])
    assert restored.handle_timer(look + 300) == []


@pytest.mark.parametrize("broken", [{}, {"groups": {"ivr": {"next_look": 1}}},
                                    {"groups": {"ivr": {"next_look": 1, "notified_firing": [],
                                                        "notified_at": None,
                                                        "alerts": [{"role": "ivr", "server": "a",
                                                                    "state": "sideways", "reason": "",
                                                                    "since": "2026-12-03T12:00:00+00:00",
                                                                    "resolved_at": None}]}}}])
def test_a_broken_snapshot_raises(broken: dict[str, object]) -> None:
    with pytest.raises((KeyError, ValueError, TypeError)):
        AlertEngine.restore(broken, TIMING)


def test_the_alerts_section_defaults() -> None:
    config = build_config({}, env={}, needs_auth=False)
    assert config.alerts.recipients == ()
    assert (config.alerts.group_wait, config.alerts.group_interval, config.alerts.repeat_interval) == (
        30, 300, 14400)


def test_recipients_come_from_the_environment_as_a_list() -> None:
    env = {"PBX_ALERTS__RECIPIENTS": "ops@example.com, noc@example.com"}
    config = build_config(MAIL_AND_BUS, env=env, needs_auth=False)
    assert config.alerts.recipients == ("ops@example.com", "noc@example.com")


@pytest.mark.parametrize(("document", "problem"), [
    ({"alerts": {"recipients": ["ops"]}, **MAIL_AND_BUS},
     "alerts.recipients.0: not an email address (like pbx@example.com) (got 'ops')"),
    ({"alerts": {"recipients": ["a@x.org", "a@x.org"]}, **MAIL_AND_BUS},
     "alerts.recipients: lists the same value twice"),
    ({"alerts": {"recipients": ["ops@example.com"]}, "state": MAIL_AND_BUS["state"]},
     "alerts.recipients: alert e-mails are sent through smtp.host: set it too"),
    ({"alerts": {"recipients": ["ops@example.com"]}, "smtp": MAIL_AND_BUS["smtp"]},
     "alerts.recipients: the portal reads the servers' events from the cluster's bus"),
    ({"alerts": {"group_wait": -1}},
     "alerts.group_wait: Input should be greater than or equal to 0 (got -1)"),
    ({"alerts": {"group_interval": 0}}, "alerts.group_interval: Input should be greater than 0 (got 0)"),
    ({"alerts": {"repeat_interval": "often"}}, "alerts.repeat_interval: Input should be a valid number"),
    ({"alerts": {"repeat_interval": 60}},
     "alerts: repeat_interval (60) is shorter than group_interval (300): a group is looked at only every "
     "group_interval"),
    ({"alerts": {"wait": 1}}, "alerts.wait: unknown key"),
    ({"smtp": {"host": "127.0.0.1", "tls": True, "starttls": True}},
     "smtp: starttls and tls: STARTTLS upgrades a plain connection, tls starts with TLS; choose one"),
])
def test_a_bad_alerts_value_stops_start_up_naming_the_key(document: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(document, env={}, needs_auth=False)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems
