"""Alerts about servers down, grouped and rate-limited for e-mail as Prometheus Alertmanager does.

Sans-IO: the engine is fed the bus's `ServerStateChanged` events (`receive(event, now)`) and
says when it wants to look at its groups again (`next_timer()`); `handle_timer(now)` gives the
notifications due. It never sends, stores or reads the clock itself.

- An alert is a server (by role and name) that went down (`down`, or `fault` for a VRRP
  instance); `up`, `master` and `backup` resolve it. The alerts of one role form a group,
  which goes out as one notification (one e-mail listing its servers).
- group_wait: a new group's first look waits this long, so that servers failing together
  go out together.
- group_interval: after a look that sent something, the next one is this long after; a
  notification goes out only when the group changed since the last one (a server newly down,
  or one that the last notification said down is back). A flapping server therefore costs at
  most one notification per group_interval, and none when it is down at both looks. A group
  whose alerts are all resolved and sent lives on, empty, until its next look, so that a new
  alert in it waits for that look instead of only group_wait.
- repeat_interval: a group still down and unchanged is notified again this long after.
- A server back before the group's look was ever sent about costs nothing.

`now` is wall-clock seconds (POSIX time), not a monotonic clock: the engine's state
(`snapshot()`, `AlertEngine.restore`) is saved and taken on by another portal, on another
host, when the one sending the alerts stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .events import ServerState, ServerStateChanged

FIRING_STATES = frozenset({ServerState.DOWN, ServerState.FAULT})
"""States that raise an alert; the others (up, master, backup) resolve it."""


@dataclass(frozen=True, slots=True)
class AlertTiming:
    """The three durations of the module's doc, in seconds (`alerts` section of the config)."""

    group_wait: float
    group_interval: float
    repeat_interval: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A server that went down: firing while it is down, resolved once it is back."""

    role: str
    """The server's role (callmanager, media, ivr, trunk, ...): the group it belongs to."""
    server: str
    """Its name, as the event gave it."""
    state: ServerState
    """The state that fired it (down, fault)."""
    reason: str
    """Why it went down, as the event said."""
    since: datetime
    """When it went down (the event's time)."""
    resolved_at: datetime | None = None
    """When it came back; None while it is down."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.role, self.server)

    @property
    def firing(self) -> bool:
        return self.resolved_at is None


class NotificationStatus(StrEnum):
    FIRING = "firing"
    """Some servers of the group are down (others may be listed as back)."""
    RESOLVED = "resolved"
    """Every server of the group the last notification said down is back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """What to tell the administrators about one group (one e-mail)."""

    group: str
    """The role whose servers it is about."""
    firing: tuple[Alert, ...]
    """The servers down, by name."""
    resolved: tuple[Alert, ...]
    """The servers the previous notification said down and that are back, by name."""
    repeated: bool
    """Nothing changed since the previous one: a reminder after repeat_interval."""

    @property
    def status(self) -> NotificationStatus:
        return NotificationStatus.FIRING if self.firing else NotificationStatus.RESOLVED


@dataclass(slots=True)
class _Group:
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    next_look: float = 0.0
    notified_firing: frozenset[tuple[str, str]] = frozenset()
    """The servers the last notification said down."""
    notified_at: float | None = None
    """When the last notification went out; None: never."""


class AlertEngine:
    def __init__(self, timing: AlertTiming) -> None:
        self.timing = timing
        self._groups: dict[str, _Group] = {}

    def receive(self, event: ServerStateChanged, now: float) -> Alert | None:
        """Take in a server's change of state; returns its alert as it is now (firing, or
        resolved by this event) when the event changed it, else None (a server up that was not
        down, the same state again)."""
        key = (event.role, event.server)
        group = self._groups.get(event.role)
        current = group.alerts.get(key) if group is not None else None
        if event.state in FIRING_STATES:
            if current is not None and current.firing:
                if (current.state, current.reason) == (event.state, event.reason):
                    return None
                changed = replace(current, state=event.state, reason=event.reason)
            else:
                changed = Alert(role=event.role, server=event.server, state=event.state,
                                reason=event.reason, since=event.time)
            if group is None:
                group = self._groups[event.role] = _Group(next_look=now + self.timing.group_wait)
        else:
            if current is None or not current.firing:
                return None
            assert group is not None
            changed = replace(current, resolved_at=event.time)
        group.alerts[key] = changed
        return changed

    def next_timer(self) -> float | None:
        """When `handle_timer` has something to do; None: no group to look at."""
        return min((group.next_look for group in self._groups.values()), default=None)

    def handle_timer(self, now: float) -> list[Notification]:
        """Look at the groups whose time has come; the notifications to send, by group."""
        notifications = []
        for name in sorted(self._groups):
            group = self._groups[name]
            if group.next_look > now:
                continue
            notification = self._look(name, group, now)
            if notification is not None:
                notifications.append(notification)
                group.notified_firing = frozenset(alert.key for alert in notification.firing)
                group.notified_at = now
            # Resolved alerts are done with: told about just now, or never told about as down.
            group.alerts = {key: alert for key, alert in group.alerts.items() if alert.firing}
            if not group.alerts and notification is None:
                del self._groups[name]
            else:
                group.next_look = now + self.timing.group_interval
        return notifications

    def _look(self, name: str, group: _Group, now: float) -> Notification | None:
        firing = tuple(sorted((a for a in group.alerts.values() if a.firing), key=lambda a: a.server))
        firing_keys = {alert.key for alert in firing}
        back = tuple(sorted((a for a in group.alerts.values()
                             if not a.firing and a.key in group.notified_firing), key=lambda a: a.server))
        if not firing_keys <= group.notified_firing or back:
            return Notification(group=name, firing=firing, resolved=back, repeated=False)
        repeat_due = group.notified_at is not None and now >= group.notified_at + self.timing.repeat_interval
        if firing and repeat_due:
            return Notification(group=name, firing=firing, resolved=(), repeated=True)
        return None

    def alerts(self) -> list[Alert]:
        """Every alert the engine holds (firing, or resolved and not yet looked at), by role and name."""
        return sorted((alert for group in self._groups.values() for alert in group.alerts.values()),
                      key=lambda alert: alert.key)

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as JSON-able data, for `restore` (by this or another process)."""
        return {"groups": {name: {
            "next_look": group.next_look,
            "notified_firing": sorted(server for _, server in group.notified_firing),
            "notified_at": group.notified_at,
            "alerts": [_alert_data(alert) for alert in group.alerts.values()],
        } for name, group in self._groups.items()}}

    @classmethod
    def restore(cls, data: dict[str, Any], timing: AlertTiming) -> AlertEngine:
        """The engine `snapshot()` gave `data` of (ValueError, KeyError or TypeError if it is broken)."""
        engine = cls(timing)
        for name, group in data["groups"].items():
            alerts = [_alert_from(item) for item in group["alerts"]]
            engine._groups[name] = _Group(
                alerts={alert.key: alert for alert in alerts}, next_look=float(group["next_look"]),
                notified_firing=frozenset((name, str(server)) for server in group["notified_firing"]),
                notified_at=None if group["notified_at"] is None else float(group["notified_at"]))
        return engine


def _alert_data(alert: Alert) -> dict[str, Any]:
    return {"role": alert.role, "server": alert.server, "state": alert.state.value, "reason": alert.reason,
            "since": alert.since.isoformat(),
            "resolved_at": None if alert.resolved_at is None else alert.resolved_at.isoformat()}


def _alert_from(data: dict[str, Any]) -> Alert:
    resolved_at = data["resolved_at"]
    return Alert(role=str(data["role"]), server=str(data["server"]), state=ServerState(data["state"]),
                 reason=str(data["reason"]), since=datetime.fromisoformat(data["since"]),
                 resolved_at=None if resolved_at is None else datetime.fromisoformat(resolved_at))
