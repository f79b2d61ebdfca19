"""Call queues on the application-server frame: callers wait with music for the next agent the
queue's strategy picks, and are joined to the agent who answers.

A call to a queue's number is answered and, when the queue takes it (agents logged in, or
`join_empty`; fewer than `max_length` waiting), waits in line hearing music, its position
and the estimated wait every `position_interval` seconds. Whenever an agent may be free
(a caller joins, a ring ends, every second) each waiting caller in turn gets the agents the
strategy picks among the available ones (`strategies.pick`: logged in, not paused, free in
the shared state store), provided this server holds the queue's lease in the state store: the
Call Managers send a queue's callers to one worker, and the lease keeps a second one (after a
move, or while the Call Managers' views differ) from distributing it at the same time. Each
agent is first claimed in the state store (`agents.claim`:
never two queue calls at once, across queues and servers) and then called through the Call
Manager (`AppServerCore.originate`). The first to answer is joined to the caller by the Call
Manager (a REFER with Replaces on the caller's call naming the agent's call, and our
`Pbx-Queue-Agent` header so that the Call Manager puts the agent in wrap-up when that call
ends); the other rings are cancelled. An agent who lets `ring_timeout` pass is marked as
missing the call, and after `max_misses` in a row is paused. A caller past `max_wait`, or
arriving at a full or unattended queue, is sent to the overflow destination, or hears that
nobody can answer and is hung up.

With `callback`, a caller may press 1, key in a number (or # for their own), hang up and
keep their place; when their turn comes an agent is rung first and, once the agent answers,
the caller is called back and joined to the agent.

Callers joining and leaving the line and the agents' changes of state are published as events
(`QueueCallerJoined`, `QueueCallerLeft`, `AgentStateChanged`), and each member's calls, talk time
and occupancy are sampled every second (`stats.AgentStats`).

Sans-IO like the frame: times in, SIP and RTP out through the core.
"""

from __future__ import annotations

import enum
import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ..appserver.core import AppCall, AppServerCore, Dialing, LabelledMetrics
from ..appserver.sounds import HOLD_MUSIC, Announcements
from ..cluster.events import AgentState, AgentStateChanged, QueueCallerJoined, QueueCallerLeft, QueueOutcome
from ..cluster.queues import AGENT_FEATURE_CODES, MemberInfo, QueueInfo
from ..cluster.state.agents import (
    AgentActivity,
    AgentRecord,
    AgentStore,
    agent_key,
    answered,
    claim,
    missed,
    released,
)
from ..cluster.state.errors import StateStoreUnavailable
from ..cluster.state.leases import LeaseStore
from ..cluster.validation import InvalidValue
from ..runtime.control import ControlReply, ControlRequest
from ..runtime.timers import Timer
from ..sip.headers import PBX_JOIN_TAG, PBX_QUEUE_AGENT
from . import sounds
from .catalog import QueueCatalog
from .stats import AgentStats, QueueStats
from .strategies import AgentView, CallNeeds, QueueMemory, Strategy, pick

log = logging.getLogger(__name__)

DISTRIBUTE_INTERVAL = 1.0
"""Seconds between two looks for free agents while callers wait (logins, ends of wrap-up)."""
RETRY_DELAY = 5.0
"""Seconds a caller waits after every agent it was offered to let it ring, before another round."""
MAX_CALLBACK_DIGITS = 20
CALLBACK_NUMBER_TIMEOUT = 15.0
"""Seconds to key in a callback number (then #) after the prompt, before the caller is back in line."""
_COUNTED = ("offered", "answered", "answered_within", "abandoned", "abandoned_within", "overflowed",
            "refused")
"""The `QueueStats` counters exported per queue."""
LEASE_SECONDS = 3.0
"""A queue's lease lapses this long after its server last renewed it (every second while callers wait)."""
ANSWER_BOUND = 4 * 3600.0
"""Seconds an agent on a queue call stays busy at most when the end of the call is never told."""
HANDLING = (AgentActivity.ON_CALL, AgentActivity.WRAP_UP)
"""An agent's activities that count as handling a call in its occupancy."""


class AgentAdmin(Protocol):
    """Agents' logins and pauses in the system of record (`cluster.queues.QueueService`)."""

    def log_in(self, domain: str, extension: str, logged_in: bool) -> list[str]:
        """Log the agent in to (out of) all its dynamic queues; their numbers. InvalidValue when none."""
        ...

    def pause(self, domain: str, extension: str, queue: str | None, paused: bool,
              reason: str | None) -> list[str]:
        """Pause (unpause) the agent in one queue or all; their numbers. InvalidValue when none."""
        ...


class Phase(enum.Enum):
    WAITING = "waiting"
    """In line, hearing music."""
    JOINING = "joining"
    """An agent answered; the Call Manager is joining the caller to them."""
    CALLBACK_NUMBER = "callback_number"
    """Keying in the number to be called back at."""
    CALLBACK = "callback"
    """Hung up, keeping the place: called back when an agent answers."""
    LEAVING = "leaving"


@dataclass(eq=False)
class Ring:
    """One agent rung for one caller."""

    waiter: Waiter
    agent: str
    claim: str
    dialing: Dialing | None = None
    timer: Timer | None = None
    timed_out: bool = False
    call: AppCall | None = None
    """The agent's call once answered."""


@dataclass(eq=False)
class Waiter:
    ident: int
    queue: LiveQueue
    caller: str
    cm: tuple[str, int]
    """The Call Manager the caller came through: where our calls to agents go."""
    transport: str
    joined_at: float
    call: AppCall | None
    phase: Phase = Phase.WAITING
    rings: dict[str, Ring] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    next_round_at: float = 0.0
    timers: list[Timer] = field(default_factory=list)
    digits: str = ""
    callback_number: str | None = None
    callback: Dialing | None = None
    agent_ring: Ring | None = None
    """The ring an agent answered, while the caller is joined (or called back)."""


@dataclass(frozen=True, slots=True)
class JoinedAgent:
    """An agent joined to a caller by this worker: the Call Manager ends the call and starts the
    wrap-up in the agent's record, which `_sample_agents` watches to tell it."""

    domain: str
    extension: str
    queue: str
    claim: str
    wrap_up: float
    joined_at: float
    """Wall-clock time of the join."""


@dataclass(eq=False)
class LiveQueue:
    info: QueueInfo
    waiters: list[Waiter] = field(default_factory=list)
    memory: QueueMemory = field(default_factory=QueueMemory)
    stats: QueueStats = field(default_factory=QueueStats)

    @property
    def key(self) -> tuple[str, str]:
        return (self.info.tenant_domain, self.info.number)

    @property
    def logged_in(self) -> int:
        return sum(1 for member in self.info.members if member.logged_in)


class QueueApplication:
    def __init__(self, *, catalog: QueueCatalog, agents: AgentStore, leases: LeaseStore,
                 announcements: Announcements, wall_offset: float, server_name: str, admin: AgentAdmin,
                 rng: random.Random | None = None, publish: Callable[[object], None] | None = None) -> None:
        """`admin` logs agents in and out and pauses them in the system of record; `publish` puts
        the callers' and agents' events on the cluster's bus (None: not published)."""
        self._catalog = catalog
        self._agents = agents
        self._leases = leases
        self._not_holding: set[tuple[str, str]] = set()
        """Queues whose lease another server holds (said once in the log)."""
        self._say = announcements.say
        self._wall_offset = wall_offset
        self._server_name = server_name
        self._admin = admin
        self._rng = rng or random.Random()
        self._core: AppServerCore | None = None
        self._idents = itertools.count(1)
        self.queues: dict[tuple[str, str], LiveQueue] = {}
        # The worker's own counters; those of each queue (offered, answered...) are `labelled`'s.
        self.counters = {"rings": 0, "rings_missed": 0, "auto_paused": 0, "callbacks": 0, "unknown_queues": 0}
        self._publish = publish
        self.agent_stats: dict[str, AgentStats] = {}
        """Each agent's numbers (`agent_key`), sampled every second (`_sample_agents`)."""
        self._sampled_at: float | None = None
        self._joined_agents: dict[str, JoinedAgent] = {}
        """Agents this worker joined to a caller, watched until the Call Manager records their call's end."""

    def attach(self, core: AppServerCore, now: float) -> None:
        self._core = core
        core.timers.schedule(now + DISTRIBUTE_INTERVAL, self._every_second)

    # -- the frame's events -----------------------------------------------------------------

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        return None  # an unknown queue is answered and announced

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return []

    def call_started(self, call: AppCall, now: float) -> None:
        if call.number in AGENT_FEATURE_CODES:
            self._feature_code(call, AGENT_FEATURE_CODES[call.number], now)
            return
        info = self._catalog.queue(call.domain, call.number, now)
        if info is None:
            self.counters["unknown_queues"] += 1
            self._leave(call, [self._say(sounds.UNKNOWN_QUEUE)], now)
            return
        queue = self.queues.get((info.tenant_domain, info.number))
        if queue is None:
            queue = self.queues[(info.tenant_domain, info.number)] = LiveQueue(info)
        queue.info = info
        waiter = Waiter(ident=next(self._idents), queue=queue, caller=call.caller, cm=call.peer,
                        transport=call.transport, joined_at=now, call=call)
        call.app_data = waiter
        queue.stats.offered += 1
        if queue.logged_in == 0 and not info.join_empty:
            self._overflow(waiter, now, why="no agent is logged in")
            return
        if info.max_length and len(queue.waiters) >= info.max_length:
            self._overflow(waiter, now, why=f"{len(queue.waiters)} callers wait already")
            return
        queue.waiters.append(waiter)
        if self._publish is not None:
            self._publish(QueueCallerJoined(domain=info.tenant_domain, queue=info.number,
                                            caller=waiter.caller, position=len(queue.waiters),
                                            server=self._server_name, time=self._wall(now)))
        welcome = [self._say(sounds.WELCOME)] + ([self._say(sounds.CALLBACK_OFFER)] if info.callback else [])
        call.play([*welcome, self._music(queue, now)], now)
        if info.max_wait:
            waiter.timers.append(call.schedule(now + info.max_wait,
                                               lambda t: self._waited_too_long(waiter, t)))
        if info.position_interval:
            self._schedule_position(waiter, now)
        self._distribute(queue, now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        waiter = call.app_data
        if not isinstance(waiter, Waiter):
            return
        for digit in digits:
            if waiter.phase is Phase.WAITING and digit == "1" and waiter.queue.info.callback:
                waiter.phase = Phase.CALLBACK_NUMBER
                waiter.digits = ""
                call.play([self._say(sounds.CALLBACK_NUMBER)], now)
            elif waiter.phase is Phase.CALLBACK_NUMBER:
                self._callback_digit(waiter, call, digit, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        waiter = call.app_data
        if isinstance(waiter, Waiter) and waiter.phase is Phase.WAITING:
            call.play([self._music(waiter.queue, now)], now)
        elif isinstance(waiter, Waiter) and waiter.phase is Phase.CALLBACK_NUMBER:
            waiter.timers.append(call.schedule(now + CALLBACK_NUMBER_TIMEOUT,
                                               lambda t: self._no_callback_number(waiter, call, t)))
        elif not isinstance(waiter, Waiter) or waiter.phase is Phase.LEAVING:
            call.hang_up(now)

    def _no_callback_number(self, waiter: Waiter, call: AppCall, now: float) -> None:
        """A caller who pressed 1 and then keyed nothing to the end: back in line, with music."""
        if waiter.phase is Phase.CALLBACK_NUMBER and waiter.call is call:
            waiter.phase = Phase.WAITING
            call.play([self._music(waiter.queue, now)], now)
            self._distribute(waiter.queue, now)

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        waiter = call.app_data
        if not isinstance(waiter, Waiter):
            return
        if waiter.phase is Phase.LEAVING:  # the overflow destination would not take it
            self._leave(call, [self._say(sounds.NOBODY)], now)
            return
        if status == 481:
            # The Call Manager has no such call any more (it ended or lost it): the caller is
            # gone, not back in line to be offered to agent after agent. Our end of it goes too,
            # and `call_ended` counts it abandoned and lets the agent go.
            log.warning("queue %s: caller %s is gone from the Call Manager (481 to the join)",
                        waiter.queue.info.number, waiter.caller)
            call.hang_up(now)
            return
        ring = waiter.agent_ring
        log.warning("queue %s: joining caller %s to agent %s failed (%d): back in line",
                    waiter.queue.info.number, waiter.caller, ring.agent if ring else "?", status)
        waiter.agent_ring = None
        if ring is not None and ring.call is not None:
            ring.call.hang_up(now)
            self._agents.change(self._agent(waiter.queue, ring.agent), released(ring.claim))
            self._agent_event(waiter.queue, ring.agent, AgentState.AVAILABLE, f"join failed ({status})",
                              now)
        waiter.phase = Phase.WAITING
        call.play([self._music(waiter.queue, now)], now)
        self._distribute(waiter.queue, now)

    def call_ended(self, call: AppCall, now: float) -> None:
        data = call.app_data
        if isinstance(data, Ring):
            self._agent_call_ended(data, call, now)
            return
        if not isinstance(data, Waiter):
            return
        waiter = data
        if waiter.phase is Phase.CALLBACK:
            return  # hung up on purpose: keeps the place
        if waiter.phase is Phase.JOINING and waiter.call is call and call.transferred:
            self._joined(waiter, now)
            return
        if waiter.phase in (Phase.WAITING, Phase.CALLBACK_NUMBER, Phase.JOINING):
            waiter.queue.stats.abandon(now - waiter.joined_at, waiter.queue.info.service_level)
            self._caller_left(waiter, QueueOutcome.ABANDONED, now)
            log.info("queue %s: caller %s hung up after %.0f s", waiter.queue.info.number, waiter.caller,
                     now - waiter.joined_at)
            ring, waiter.agent_ring = waiter.agent_ring, None
            if ring is not None:  # an agent answered for a caller now gone: let the agent go
                if ring.call is not None:
                    ring.call.hang_up(now)
                self._agents.change(self._agent(waiter.queue, ring.agent), released(ring.claim))
                self._agent_event(waiter.queue, ring.agent, AgentState.AVAILABLE, "the caller hung up", now)
        self._forget(waiter, now)

    def _feature_code(self, call: AppCall, action: str, now: float) -> None:
        """An agent dialled *45 (log in), *46 (log out), *47 (pause) or *48 (unpause): done for
        all its queues, said, then hung up."""
        try:
            if action in ("login", "logout"):
                queues = self._admin.log_in(call.domain, call.caller, action == "login")
            else:
                queues = self._admin.pause(call.domain, call.caller, None, action == "pause",
                                           "paused from the phone" if action == "pause" else None)
        except InvalidValue as exc:
            log.info("agent feature code %s from %s: %s", call.number, call.caller, exc)
            self._leave(call, [self._say(sounds.NOT_AN_AGENT)], now)
            return
        log.info("agent %s@%s: %s in queues %s", call.caller, call.domain, action, ", ".join(queues))
        state = {"login": AgentState.AVAILABLE, "logout": AgentState.LOGGED_OUT, "pause": AgentState.PAUSED,
                 "unpause": AgentState.AVAILABLE}[action]
        for number in queues:
            self._publish_agent(call.domain, call.caller, state, number, f"{action} ({call.number})", now)
        said = {"login": sounds.LOGGED_IN, "logout": sounds.LOGGED_OUT, "pause": sounds.PAUSED,
                "unpause": sounds.UNPAUSED}[action]
        self._leave(call, [self._say(said)], now)

    # -- distribution --------------------------------------------------------------------------

    def _every_second(self, now: float) -> None:
        assert self._core is not None
        self._sample_agents(now)
        for queue in list(self.queues.values()):
            if queue.waiters:
                info = self._catalog.queue(*queue.key, now)
                if info is not None:
                    queue.info = info
                    if queue.logged_in == 0 and not info.join_empty and info.leave_empty:
                        for waiter in [w for w in queue.waiters if w.phase is Phase.WAITING and not w.rings]:
                            self._overflow(waiter, now, why="the last agent logged out")
                self._distribute(queue, now)
        self._core.timers.schedule(now + DISTRIBUTE_INTERVAL, self._every_second)

    def _agent(self, queue: LiveQueue, extension: str) -> str:
        return agent_key(queue.info.tenant_domain, extension)

    def _distribute(self, queue: LiveQueue, now: float) -> None:
        """Offer each waiting caller, in order, to the agents the strategy picks among those free."""
        info = queue.info
        members = [m for m in info.members if m.logged_in and not m.paused]
        if not members or not self._holds(queue, now):
            return
        wall = now + self._wall_offset
        records = self._agents.records([self._agent(queue, m.extension) for m in members])
        ringing_here = {ring.agent for waiter in queue.waiters for ring in waiter.rings.values()}
        free = {m.extension for m in members if m.extension not in ringing_here
                and records[self._agent(queue, m.extension)].free(wall)}
        strategy = Strategy(info.strategy)
        for waiter in queue.waiters:
            if not free:
                return
            if waiter.phase not in (Phase.WAITING, Phase.CALLBACK) or waiter.rings \
                    or now < waiter.next_round_at:
                continue
            untried = free - waiter.tried
            if not untried:
                waiter.tried.clear()
                untried = set(free)
            views = [AgentView(extension=m.extension, order=order, penalty=m.penalty, skills=m.skills,
                               calls_taken=records[self._agent(queue, m.extension)].calls_taken,
                               talk_seconds=records[self._agent(queue, m.extension)].talk_seconds,
                               idle_since=records[self._agent(queue, m.extension)].idle_since,
                               available=m.extension in untried)
                     for order, m in enumerate(info.members) if m in members]
            selection = pick(strategy, views, CallNeeds(skills=info.skills), queue.memory, self._rng)
            for extension in selection.ring:
                if self._ring(waiter, extension, now):
                    free.discard(extension)

    def _holds(self, queue: LiveQueue, now: float) -> bool:
        """Whether this server may distribute the queue now: it holds (takes, renews) its lease."""
        try:
            held = self._leases.hold(f"queue:{'/'.join(queue.key)}", self._server_name, LEASE_SECONDS, now)
        except StateStoreUnavailable:
            held = False
        if not held and queue.key not in self._not_holding:
            log.warning("queue %s: another queue server distributes it (or the state store is away): "
                        "its callers here wait", queue.info.number)
            self._not_holding.add(queue.key)
        elif held:
            self._not_holding.discard(queue.key)
        return held

    def _ring(self, waiter: Waiter, extension: str, now: float) -> bool:
        """Claim the agent and call it for `waiter`; whether it rings."""
        assert self._core is not None
        queue = waiter.queue
        ring = Ring(waiter=waiter, agent=extension,
                    claim=f"{self._server_name}/{waiter.ident}/{extension}/{now:.3f}")
        wall = now + self._wall_offset
        taken = claim(ring.claim, wall, queue.info.ring_timeout + 5)
        if self._agents.change(self._agent(queue, extension), taken) is None:
            return False  # taken meanwhile by another queue or server
        dialing = self._core.originate(
            number=extension, domain=queue.info.tenant_domain, caller=queue.info.number, peer=waiter.cm,
            transport=waiter.transport, now=now,
            # Expires: the Call Manager stops the ring itself if we are gone by then.
            headers=[*_joined_with(waiter.call), ("Expires", str(queue.info.ring_timeout))],
            on_answered=lambda call, t: self._agent_answered(ring, call, t),
            on_failed=lambda status, t: self._agent_failed(ring, status, t))
        if dialing is None:
            self._agents.change(self._agent(queue, extension), released(ring.claim))
            return False
        dialing.app_data = ring
        ring.dialing = dialing
        ring.timer = self._core.timers.schedule(now + queue.info.ring_timeout,
                                                lambda t: self._ring_timed_out(ring, t))
        waiter.rings[extension] = ring
        waiter.tried.add(extension)
        self.counters["rings"] += 1
        log.info("queue %s: ringing agent %s for caller %s", queue.info.number, extension, waiter.caller)
        self._agent_event(queue, extension, AgentState.RINGING, f"caller {waiter.caller}", now)
        return True

    def _ring_timed_out(self, ring: Ring, now: float) -> None:
        assert self._core is not None
        if ring.dialing is not None and not ring.dialing.done:
            ring.timed_out = True
            self._core.cancel(ring.dialing, now)

    def _agent_failed(self, ring: Ring, status: int, now: float) -> None:
        waiter, queue = ring.waiter, ring.waiter.queue
        if ring.timer is not None:
            ring.timer.cancel()
        waiter.rings.pop(ring.agent, None)
        key = self._agent(queue, ring.agent)
        if status == 487 and not ring.timed_out:
            self._agents.change(key, released(ring.claim))  # another agent answered first, or the caller left
            self._agent_event(queue, ring.agent, AgentState.AVAILABLE, "the ring stopped", now)
        else:
            self.counters["rings_missed"] += 1
            record = self._agents.change(key, missed(ring.claim))
            log.info("queue %s: agent %s did not take caller %s (%d)", queue.info.number, ring.agent,
                     waiter.caller, status)
            why = f"no answer in {queue.info.ring_timeout} s" if ring.timed_out else f"refused ({status})"
            self._agent_event(queue, ring.agent, AgentState.AVAILABLE, why, now)
            if record is not None and queue.info.max_misses and record.misses >= queue.info.max_misses:
                self.counters["auto_paused"] += 1
                reason = f"missed {record.misses} queue call{'s' if record.misses > 1 else ''}"
                log.warning("queue %s: agent %s paused: %s", queue.info.number, ring.agent, reason)
                self._admin.pause(queue.info.tenant_domain, ring.agent, queue.info.number, True, reason)
                self._agent_event(queue, ring.agent, AgentState.PAUSED, reason, now)
        if not waiter.rings and waiter.agent_ring is None and waiter.phase in (Phase.WAITING, Phase.CALLBACK):
            if waiter.tried >= {m.extension for m in queue.info.members if m.logged_in and not m.paused}:
                waiter.next_round_at = now + RETRY_DELAY
            self._distribute(queue, now)

    def _agent_answered(self, ring: Ring, call: AppCall, now: float) -> None:
        waiter, queue = ring.waiter, ring.waiter.queue
        call.app_data = ring
        ring.call = call
        if ring.timer is not None:
            ring.timer.cancel()
        waiter.rings.pop(ring.agent, None)
        key = self._agent(queue, ring.agent)
        if waiter.phase not in (Phase.WAITING, Phase.CALLBACK) or waiter.agent_ring is not None:
            self._agents.change(key, released(ring.claim))  # too late: the caller left or is joined
            self._agent_event(queue, ring.agent, AgentState.AVAILABLE, "answered too late", now)
            call.hang_up(now)
            return
        self._agents.change(key, answered(ring.claim, now + self._wall_offset, ANSWER_BOUND))
        self._agent_event(queue, ring.agent, AgentState.ON_CALL, f"caller {waiter.caller}", now)
        waiter.agent_ring = ring
        assert self._core is not None
        for other in list(waiter.rings.values()):
            if other.dialing is not None:
                self._core.cancel(other.dialing, now)
        if waiter.phase is Phase.CALLBACK:
            self._call_back(waiter, ring, now)
            return
        assert waiter.call is not None
        waiter.phase = Phase.JOINING
        waiter.call.stop_playback()
        self._join(waiter.call, ring, now)

    def _join(self, customer: AppCall, ring: Ring, now: float) -> None:
        """Have the Call Manager join `customer` to the agent's answered call."""
        assert ring.call is not None
        info = ring.waiter.queue.info
        log.info("queue %s: joining caller %s to agent %s", info.number, ring.waiter.caller, ring.agent)
        customer.transfer(ring.agent, now, replaces=ring.call, headers=[
            (PBX_QUEUE_AGENT, f"{self._agent(ring.waiter.queue, ring.agent)};claim={ring.claim};"
                              f"wrap-up={info.wrap_up}")])

    def _joined(self, waiter: Waiter, now: float) -> None:
        """The Call Manager joined the caller to the agent: the caller leaves the line, answered."""
        queue = waiter.queue
        waited = now - waiter.joined_at
        queue.stats.answer(waited, queue.info.service_level)
        ring = waiter.agent_ring
        log.info("queue %s: caller %s answered by %s after %.0f s", queue.info.number, waiter.caller,
                 ring.agent if ring else "?", waited)
        self._caller_left(waiter, QueueOutcome.ANSWERED, now, agent=ring.agent if ring else None)
        if ring is not None:
            self._joined_agents[self._agent(queue, ring.agent)] = JoinedAgent(
                domain=queue.info.tenant_domain, extension=ring.agent, queue=queue.info.number,
                claim=ring.claim, wrap_up=queue.info.wrap_up, joined_at=now + self._wall_offset)
        self._forget(waiter, now)

    def _agent_call_ended(self, ring: Ring, call: AppCall, now: float) -> None:
        """Our leg to an agent ended: joined away (the Call Manager replaces it), or the agent hung
        up before the join; then a REFER under way fails (`transfer_failed`) and puts the caller
        back in line, and a caller being called back is let go and keeps their place."""
        waiter = ring.waiter
        if waiter.agent_ring is not ring or (waiter.phase is Phase.JOINING and waiter.call is not None):
            return
        self._agents.change(self._agent(waiter.queue, ring.agent), released(ring.claim))
        self._agent_event(waiter.queue, ring.agent, AgentState.AVAILABLE, "hung up before the join", now)
        waiter.agent_ring = None
        if waiter.callback is not None and self._core is not None:
            callback, waiter.callback = waiter.callback, None
            waiter.phase = Phase.CALLBACK
            self._core.cancel(callback, now)

    # -- callbacks -----------------------------------------------------------------------------

    def _callback_digit(self, waiter: Waiter, call: AppCall, digit: str, now: float) -> None:
        call.stop_playback()
        if digit != "#":
            if digit.isdigit() and len(waiter.digits) < MAX_CALLBACK_DIGITS:
                waiter.digits += digit
            return
        waiter.callback_number = waiter.digits or waiter.caller
        waiter.phase = Phase.CALLBACK
        waiter.call = None
        call.app_data = None
        self.counters["callbacks"] += 1
        log.info("queue %s: caller %s will be called back at %s", waiter.queue.info.number, waiter.caller,
                 waiter.callback_number)
        for timer in waiter.timers:
            timer.cancel()
        waiter.timers.clear()
        self._leave(call, [self._say(sounds.CALLBACK_KEPT)], now)

    def _call_back(self, waiter: Waiter, ring: Ring, now: float) -> None:
        """An agent answered for a caller who hung up: call the caller, then join them."""
        assert self._core is not None and waiter.callback_number is not None
        waiter.phase = Phase.JOINING
        info = waiter.queue.info

        def answered_back(customer: AppCall, t: float) -> None:
            customer.app_data = waiter
            waiter.call = customer
            if waiter.agent_ring is not ring or ring.call is None:
                customer.hang_up(t)
                return
            self._join(customer, ring, t)

        def not_answered(status: int, t: float) -> None:
            if waiter.callback is None:
                return  # the agent hung up first: back to waiting for one
            log.info("queue %s: calling %s back failed (%d)", info.number, waiter.callback_number, status)
            if ring.call is not None:
                ring.call.hang_up(t)
            self._agents.change(self._agent(waiter.queue, ring.agent), released(ring.claim))
            self._agent_event(waiter.queue, ring.agent, AgentState.AVAILABLE, "the call back failed", t)
            waiter.queue.stats.abandon(t - waiter.joined_at, info.service_level)
            self._caller_left(waiter, QueueOutcome.ABANDONED, t)
            self._forget(waiter, t)

        waiter.callback = self._core.originate(
            number=waiter.callback_number, domain=info.tenant_domain, caller=info.number, peer=waiter.cm,
            transport=waiter.transport, now=now, headers=_joined_with(ring.call), on_answered=answered_back,
            on_failed=not_answered)
        if waiter.callback is None:
            not_answered(503, now)

    # -- leaving -------------------------------------------------------------------------------

    def _waited_too_long(self, waiter: Waiter, now: float) -> None:
        if waiter.phase is Phase.WAITING and not waiter.rings and waiter.agent_ring is None:
            self._overflow(waiter, now, why=f"waited {waiter.queue.info.max_wait} s")

    def _overflow(self, waiter: Waiter, now: float, *, why: str) -> None:
        queue, call = waiter.queue, waiter.call
        if waiter in queue.waiters:
            queue.waiters.remove(waiter)
        overflow = queue.info.overflow
        log.info("queue %s: caller %s %s: %s", queue.info.number, waiter.caller,
                 f"to {overflow}" if overflow else "refused", why)
        waiter.phase = Phase.LEAVING
        for timer in waiter.timers:
            timer.cancel()
        if call is None:
            return
        if overflow is None:
            queue.stats.refused += 1
            self._caller_left(waiter, QueueOutcome.REFUSED, now)
            self._leave(call, [self._say(sounds.NOBODY)], now)
            return
        queue.stats.overflowed += 1
        self._caller_left(waiter, QueueOutcome.OVERFLOWED, now)
        call.stop_playback()
        call.transfer(overflow.partition(":")[2] or overflow, now)

    def _music(self, queue: LiveQueue, now: float) -> npt.NDArray[np.int16]:
        """The queue's music prompt; the built-in music when it has none or it is gone."""
        name = queue.info.music_prompt
        music = self._catalog.prompts.prompt(queue.info.tenant_domain, name, now) if name else None
        return HOLD_MUSIC if music is None else music

    def _leave(self, call: AppCall, prompts: list[npt.NDArray[np.int16]], now: float) -> None:
        """A last announcement, then the hang-up (`playback_finished`)."""
        waiter = call.app_data
        if isinstance(waiter, Waiter):
            waiter.phase = Phase.LEAVING
        call.play(prompts, now)

    def _forget(self, waiter: Waiter, now: float) -> None:
        queue = waiter.queue
        if waiter in queue.waiters:
            queue.waiters.remove(waiter)
        for timer in waiter.timers:
            timer.cancel()
        if self._core is not None:
            for ring in list(waiter.rings.values()):
                if ring.dialing is not None:
                    self._core.cancel(ring.dialing, now)
        if waiter.phase is not Phase.JOINING:
            waiter.phase = Phase.LEAVING

    def _schedule_position(self, waiter: Waiter, now: float) -> None:
        call, interval = waiter.call, waiter.queue.info.position_interval
        if call is None:
            return

        def announce(t: float) -> None:
            if waiter.phase is not Phase.WAITING or waiter.call is not call:
                return
            place = waiter.queue.waiters.index(waiter) + 1
            estimate = waiter.queue.stats.expected_wait()
            minutes = None if estimate is None else int(estimate * place // 60)
            call.play([self._say(sounds.position(place, minutes)), self._music(waiter.queue, t)], t)
            waiter.timers.append(call.schedule(t + interval, announce))

        waiter.timers.append(call.schedule(now + interval, announce))

    # -- events and the agents' numbers ----------------------------------------------------------

    def _wall(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self._wall_offset, UTC)

    def _caller_left(self, waiter: Waiter, outcome: QueueOutcome, now: float, *,
                     agent: str | None = None) -> None:
        if self._publish is not None:
            info = waiter.queue.info
            self._publish(QueueCallerLeft(domain=info.tenant_domain, queue=info.number, caller=waiter.caller,
                                          outcome=outcome, waited=round(now - waiter.joined_at, 3),
                                          agent=agent, callback=waiter.callback_number,
                                          server=self._server_name, time=self._wall(now)))

    def _agent_event(self, queue: LiveQueue, extension: str, state: AgentState, reason: str,
                     now: float) -> None:
        self._publish_agent(queue.info.tenant_domain, extension, state, queue.info.number, reason, now)

    def _publish_agent(self, domain: str, extension: str, state: AgentState, queue: str | None, reason: str,
                       now: float, *, wall: float | None = None) -> None:
        """`wall`: when it changed, if not `now` (a wall-clock time from the agent's record)."""
        if self._publish is not None:
            self._publish(AgentStateChanged(
                domain=domain, extension=extension, state=state, queue=queue, reason=reason,
                server=self._server_name,
                time=self._wall(now) if wall is None else datetime.fromtimestamp(wall, UTC)))

    def _sample_agents(self, now: float) -> None:
        """Count the seconds each member of this worker's queues was staffed and handling a call and
        the calls its record counted (`AgentStats`); tell the end of the calls this worker joined,
        which the Call Manager records. A read of the queues (cached) and one of the records."""
        seconds = 0.0 if self._sampled_at is None else now - self._sampled_at
        self._sampled_at = now
        staffed: dict[str, bool] = {}
        for queue in self.queues.values():
            info = self._catalog.queue(*queue.key, now) or queue.info
            for member in info.members:
                key = self._agent(queue, member.extension)
                staffed[key] = staffed.get(key, False) or (member.logged_in and not member.paused)
        try:
            records = self._agents.records(list(staffed.keys() | self._joined_agents.keys()))
        except StateStoreUnavailable:
            return  # a second not counted
        wall = now + self._wall_offset
        for key, logged_in in staffed.items():
            record = records[key]
            handling = record.activity in HANDLING and not record.free(wall)
            self.agent_stats.setdefault(key, AgentStats()).sample(
                seconds, staffed=logged_in, handling=handling, calls_taken=record.calls_taken,
                talk_seconds=record.talk_seconds)
        for key, joined in list(self._joined_agents.items()):
            self._watch_joined(key, joined, records[key], now)

    def _watch_joined(self, key: str, joined: JoinedAgent, record: AgentRecord, now: float) -> None:
        """Tell the wrap-up and the availability of an agent whose call the Call Manager ended."""
        wall = now + self._wall_offset
        if record.activity is AgentActivity.ON_CALL and record.call == joined.claim and not record.free(wall):
            return
        del self._joined_agents[key]
        if record.idle_since < joined.joined_at:  # the Call Manager could not record the end
            self._publish_agent(joined.domain, joined.extension, AgentState.AVAILABLE, joined.queue,
                                "the end of the call was not recorded", now)
            return
        # The Call Manager's `agents.ended` sets idle_since to the end of the call plus the wrap-up.
        if joined.wrap_up > 0:
            self._publish_agent(joined.domain, joined.extension, AgentState.WRAP_UP, joined.queue,
                                "the call ended", now, wall=record.idle_since - joined.wrap_up)

        def free(t: float) -> None:
            self._publish_agent(joined.domain, joined.extension, AgentState.AVAILABLE, joined.queue,
                                "wrap-up over" if joined.wrap_up > 0 else "the call ended", t,
                                wall=record.idle_since)

        if record.idle_since <= wall or self._core is None:
            free(now)
        else:
            self._core.timers.schedule(record.idle_since - self._wall_offset, free)

    # -- reports ---------------------------------------------------------------------------------

    @property
    def gauges(self) -> dict[str, int]:
        # Named apart from `labelled`'s per-queue ones: one metric name, one set of labels.
        return {"queues": len(self.queues),
                "callers_waiting": sum(len(q.waiters) for q in self.queues.values()),
                "agents_ringing": sum(len(w.rings) for q in self.queues.values() for w in q.waiters)}

    def labelled(self, now: float) -> list[LabelledMetrics]:
        """Per-queue and per-agent metrics: for each, the label's name, then gauges and counters by
        name and queue (agent)."""
        gauges: dict[str, dict[str, float]] = {"waiting": {}, "longest_wait_seconds": {}, "service_level": {}}
        counters: dict[str, dict[str, float]] = {name: {} for name in _COUNTED}
        for queue in self.queues.values():
            label = "/".join(queue.key)
            gauges["waiting"][label] = len(queue.waiters)
            gauges["longest_wait_seconds"][label] = max((now - w.joined_at for w in queue.waiters),
                                                        default=0.0)
            if queue.stats.service_level is not None:
                gauges["service_level"][label] = queue.stats.service_level
            for name in _COUNTED:
                counters[name][label] = getattr(queue.stats, name)
        agent_gauges: dict[str, dict[str, float]] = {"agent_occupancy": {}}
        agent_counters: dict[str, dict[str, float]] = {
            name: {} for name in ("agent_calls", "agent_talk_seconds", "agent_staffed_seconds",
                                  "agent_handling_seconds")}
        for key, agent in self.agent_stats.items():
            if agent.occupancy is not None:
                agent_gauges["agent_occupancy"][key] = agent.occupancy
            for name in agent_counters:
                agent_counters[name][key] = getattr(agent, name.removeprefix("agent_"))
        return [("queue", gauges, counters), ("agent", agent_gauges, agent_counters)]

    # -- the control API -----------------------------------------------------------------------

    @property
    def control_paths(self) -> tuple[str, ...]:
        return ("queues",)

    def control(self, request: ControlRequest, now: float) -> ControlReply:
        """GET queues[/DOMAIN/NUMBER]: the queues this worker distributes, their line and numbers."""
        path = request.path[1:]
        if request.method != "GET":
            return ControlReply.error(405, "GET only")
        if not path:
            return ControlReply(200, {"queues": [self._describe(q, now) for q in self.queues.values()]})
        queue = self.queues.get((path[0], path[1])) if len(path) == 2 else None
        if queue is None:
            return ControlReply.error(404, f"queue {'/'.join(path)} has no caller on this server")
        return ControlReply(200, {"queue": self._describe(queue, now)})

    def _describe(self, queue: LiveQueue, now: float) -> dict[str, object]:
        stats = queue.stats
        return {"domain": queue.info.tenant_domain, "number": queue.info.number,
                "strategy": queue.info.strategy,
                "waiting": [{"caller": w.caller, "waited": round(now - w.joined_at, 1),
                             "state": w.phase.value, "ringing": sorted(w.rings),
                             "callback": w.callback_number} for w in queue.waiters],
                "offered": stats.offered, "answered": stats.answered, "abandoned": stats.abandoned,
                "overflowed": stats.overflowed, "refused": stats.refused,
                "service_level": stats.service_level, "service_level_all": stats.service_level_all,
                "average_wait": stats.average_wait,
                "members": [self._describe_member(queue, member) for member in queue.info.members]}

    def _describe_member(self, queue: LiveQueue, member: MemberInfo) -> dict[str, object]:
        agent = self.agent_stats.get(self._agent(queue, member.extension), AgentStats())
        return {"extension": member.extension, "logged_in": member.logged_in, "paused": member.paused,
                "calls": agent.calls, "talk_seconds": round(agent.talk_seconds, 1),
                "staffed_seconds": round(agent.staffed_seconds), "occupancy": agent.occupancy}


def _joined_with(call: AppCall | None) -> list[tuple[str, str]]:
    """The header naming the call ours will be joined with, so that one Call Manager worker holds both."""
    tag = call.dialog.remote_tag if call is not None else None
    return [(PBX_JOIN_TAG, tag)] if tag else []
