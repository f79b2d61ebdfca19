"""OPTIONS probing of trunks: whether a provider's server answers, so that routes pass over a
trunk that is down at once rather than after a call's INVITE timed out there.

Rules (Kamailio dispatcher semantics): each trunk with a `probe_interval` (seconds; 0: not
probed) gets an OPTIONS every interval. A probe fails when no final answer comes within
`answer_timeout` (the interval, at most `MAX_ANSWER_WAIT`) or the answer is a 5xx or 408 (a
proxy's timeout); any other final answer, 404 or 405 included, says the server is alive.
After `down_after` failures in a row the trunk is down; after `up_after` answers in a row it
is up again. A trunk is up until its probes say otherwise. Each change is reported with why.

`TrunkProbe` is one trunk's machine (sans-IO, the clock passed in); `TrunkProbes` runs one per
trunk of the catalogue on the Call Manager's SIP stack and timers. Every worker probes every
trunk (each needs the state to route), so the probes are light: one OPTIONS per interval.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..cluster.models.trunk import DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER
from ..runtime.timers import Timer, TimerQueue
from ..sip.headers import Address
from ..sip.message import SipRequest, SipResponse
from ..sip.stack import SERVER_NAME, SipStack
from ..sip.transaction import ClientTransaction, make_tag
from ..sip.uri import SipUri
from .trunks import TrunkEntry, TrunkStateCallback, TrunkStateChange

log = logging.getLogger(__name__)

MAX_ANSWER_WAIT = 5.0
"""Seconds a probe waits for its final answer at most (UDP retransmissions included)."""


class ProbePhase(enum.Enum):
    UP = "answers OPTIONS (or not probed yet)"
    DOWN = "failed the last probes"


class ProbeOutcome(enum.Enum):
    ANSWERED = "a final answer other than 5xx"
    FAILED = "no final answer in time, a 5xx or a 408"


UP, DOWN = ProbePhase
TRANSITIONS: dict[tuple[ProbePhase, ProbeOutcome], ProbePhase] = {
    (UP, ProbeOutcome.ANSWERED): UP,
    (UP, ProbeOutcome.FAILED): DOWN,
    (DOWN, ProbeOutcome.ANSWERED): UP,
    (DOWN, ProbeOutcome.FAILED): DOWN,
}
"""(phase, outcome) -> the phase it leads to once the outcome came `down_after` (to Down) or
`up_after` (to Up) times in a row; until then the phase stays."""


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """What `pbx trunk list` shows of a trunk's probes."""

    phase: ProbePhase
    reason: str = ""
    """The last probe's outcome: "200 OK", "503 Service Unavailable", "no answer"."""
    since: float | None = None
    """When the phase began (the caller's clock); None while never changed."""


class TrunkProbe:
    """One trunk's probes: `handle_timer` says when to send one, `handle_response` takes its answer."""

    def __init__(self, *, interval: float, now: float, down_after: int = DEFAULT_DOWN_AFTER,
                 up_after: int = DEFAULT_UP_AFTER) -> None:
        if interval <= 0:
            raise ValueError(f"a probe interval is positive, not {interval}")
        self.interval = interval
        self.answer_timeout = min(interval, MAX_ANSWER_WAIT)
        self._down_after = down_after
        self._up_after = up_after
        self._next_probe = now
        self._waiting_since: float | None = None
        self._streak = 0
        """Outcomes in a row that lead away from the current phase."""
        self.status = ProbeStatus(UP)

    def next_timer(self) -> float:
        if self._waiting_since is not None:
            return min(self._next_probe, self._waiting_since + self.answer_timeout)
        return self._next_probe

    def handle_timer(self, now: float) -> tuple[bool, TrunkStateChange | None]:
        """(whether a probe is to be sent now, the change an unanswered probe made)."""
        change = None
        if self._waiting_since is not None and now >= self._waiting_since + self.answer_timeout:
            self._waiting_since = None
            change = self._count(ProbeOutcome.FAILED, "no answer", now)
        send = now >= self._next_probe
        if send:
            self._waiting_since = now
            self._next_probe = now + self.interval
        return send, change

    def handle_response(self, code: int, reason: str, now: float) -> TrunkStateChange | None:
        """The final answer to the probe in progress; the change it made, if any."""
        if code < 200 or self._waiting_since is None:
            return None
        self._waiting_since = None
        outcome = ProbeOutcome.FAILED if 500 <= code < 600 or code == 408 else ProbeOutcome.ANSWERED
        return self._count(outcome, f"{code} {reason}".strip(), now)

    def _count(self, outcome: ProbeOutcome, reason: str, now: float) -> TrunkStateChange | None:
        phase = self.status.phase
        after = TRANSITIONS[(phase, outcome)]
        if after is phase:
            self._streak = 0
            self.status = ProbeStatus(phase, reason, self.status.since)
            return None
        self._streak += 1
        needed = self._down_after if after is DOWN else self._up_after
        if self._streak < needed:
            self.status = ProbeStatus(phase, reason, self.status.since)
            return None
        self._streak = 0
        self.status = ProbeStatus(after, reason, now)
        why = (f"OPTIONS: {reason} ({needed} probes in a row)" if after is DOWN else
               f"OPTIONS answered again: {reason}")
        return TrunkStateChange(up=after is UP, reason=why, probed=True)


class TrunkProbes:
    """The probes of the catalogue's trunks on this worker."""

    def __init__(self, *, stack: SipStack, timers: TimerQueue, make_tag: Callable[[], str],
                 on_state: TrunkStateCallback) -> None:
        self._stack = stack
        self._timers = timers
        self._make_tag = make_tag
        self._on_state = on_state
        self._probes: dict[str, tuple[TrunkEntry, TrunkProbe]] = {}
        self._timer: dict[str, Timer] = {}
        self._pending: dict[str, ClientTransaction] = {}

    def update(self, trunks: Sequence[TrunkEntry], now: float) -> None:
        """Probe the trunks that want it as they are now; forget the others."""
        wanted = {trunk.key: trunk for trunk in trunks if trunk.probe_interval > 0}
        for key in list(self._probes):
            if wanted.get(key) != self._probes[key][0]:
                self._drop(key)
        for key, trunk in wanted.items():
            if key not in self._probes:
                probe = TrunkProbe(interval=trunk.probe_interval, now=now, down_after=trunk.down_after,
                                   up_after=trunk.up_after)
                self._probes[key] = (trunk, probe)
                self._arm(key, probe)

    def down_reason(self, trunk: TrunkEntry) -> str | None:
        """Why `trunk` is down ("OPTIONS: no answer..."), None while it is up or not probed."""
        entry = self._probes.get(trunk.key)
        if entry is None or entry[1].status.phase is UP:
            return None
        return f"down since its OPTIONS got {entry[1].status.reason}"

    def listing(self, now: float) -> list[dict[str, object]]:
        """Each probed trunk's state as the control API lists it (`trunks.merge_trunk_statuses`)."""
        return [{"tenant": trunk.tenant_domain, "name": trunk.name, "state": probe.status.phase.name.lower(),
                 "reason": probe.status.reason,
                 "for": None if probe.status.since is None else max(0, round(now - probe.status.since)),
                 "workers_down": int(probe.status.phase is DOWN), "workers": 1}
                for trunk, probe in self._probes.values()]

    def _drop(self, key: str) -> None:
        self._probes.pop(key, None)
        timer = self._timer.pop(key, None)
        if timer is not None:
            timer.cancel()
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._stack.layer.abandon(pending)

    def _arm(self, key: str, probe: TrunkProbe) -> None:
        self._timer[key] = self._timers.schedule(probe.next_timer(), lambda t: self._due(key, probe, t))

    def _due(self, key: str, probe: TrunkProbe, now: float) -> None:
        entry = self._probes.get(key)
        if entry is None or entry[1] is not probe:
            return  # dropped since
        trunk = entry[0]
        send, change = probe.handle_timer(now)
        if change is not None:
            pending = self._pending.pop(key, None)
            if pending is not None:  # given up: no more retransmissions of it
                self._stack.layer.abandon(pending)
            self._report(trunk, change, now)
        if send:
            self._send(trunk, probe, now)
        self._arm(key, probe)

    def _send(self, trunk: TrunkEntry, probe: TrunkProbe, now: float) -> None:
        previous = self._pending.pop(trunk.key, None)
        if previous is not None:
            self._stack.layer.abandon(previous)
        target = SipUri(host=trunk.host, port=trunk.port,
                        params={"transport": "tcp"} if trunk.transport == "TCP" else {})
        request = SipRequest("OPTIONS", target, [
            ("Via", self._stack.via(trunk.transport)),
            ("Max-Forwards", "70"),
            ("From", str(Address(uri=SipUri(host=self._stack.host, port=self._stack.port),
                                 params={"tag": self._make_tag()}))),
            ("To", str(Address(uri=SipUri(host=trunk.host, port=trunk.port)))),
            ("Call-ID", make_tag() + make_tag()),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", SERVER_NAME),
        ])
        tx = self._stack.send_request(request, trunk.destination, trunk.transport, now)
        self._pending[trunk.key] = tx

        def on_response(response: SipResponse, t: float) -> None:
            if self._pending.get(trunk.key) is not tx:
                return  # an answer to a probe given up or replaced
            if response.status_code >= 200:
                del self._pending[trunk.key]
            change = probe.handle_response(response.status_code, response.reason, t)
            if change is not None:
                self._report(trunk, change, t)
            timer = self._timer.pop(trunk.key, None)
            if timer is not None:
                timer.cancel()
            self._arm(trunk.key, probe)

        tx.user_data = on_response

    def _report(self, trunk: TrunkEntry, change: TrunkStateChange, now: float) -> None:
        if change.up:
            log.info("trunk %s is up: %s", trunk.key, change.reason)
        else:
            log.warning("trunk %s is down: %s", trunk.key, change.reason)
        self._on_state(trunk, change, now)
