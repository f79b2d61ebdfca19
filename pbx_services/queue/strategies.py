"""Which agents a call queue rings for its next waiting call (sans-IO).

`pick` is a pure function of the members' views, the call's needs, the queue's memory and a
`random.Random` handed in: no clock, no I/O, no global random. Its rules, in this order:

1. Skills. An agent qualifies when it has every skill the call needs at the needed level or
   above; a call that needs nothing is for everyone.
2. Penalty tiers. Only the available qualifying agents of the lowest penalty are candidates;
   a higher tier is rung only when no lower tier has anybody available (Asterisk's penalty,
   FreeSWITCH's tier level). WEIGHTED_RANDOM is the exception: there, as in Asterisk's
   `wrandom`, the penalty is a weight, not a tier, so every available qualifying agent is a
   candidate and the selection names no tier.
3. The strategy, among the candidates:
   - RING_ALL rings all of them; every other strategy rings exactly one.
   - LINEAR: the first in the configured order (`order`), every time (Asterisk `linear`,
     FreeSWITCH `top-down`, `sequentially-by-agent-order`).
   - ROUND_ROBIN: the next after the last agent rung, rotating in extension order (compared
     as strings). Like Asterisk's `rrmemory`, which rotates in its member container's order
     rather than the configuration's, the rotation does not move when members are reordered,
     and it goes on after the last agent rung even once that agent has left the queue.
   - ROUND_ROBIN_ORDERED: the next after the last agent rung, rotating in the configured
     order (Asterisk `rrordered`; FreeSWITCH's `round-robin` rotates so too, but that name is
     ours for ROUND_ROBIN); when the last agent rung is no longer a member, it starts again
     from the first.
   - LONGEST_IDLE: the lowest `idle_since` (Asterisk `leastrecent`, FreeSWITCH
     `longest-idle-agent`); FEWEST_CALLS: the fewest `calls_taken`; LEAST_TALK_TIME: the
     least `talk_seconds`.
   - RANDOM: uniformly at random.
   - WEIGHTED_RANDOM: Asterisk's rule, not weights of 1/(1+penalty): each candidate draws
     uniformly from [0, 1 + penalty) and the lowest draw wins. With penalties 0 and 1 the
     first wins 3 calls in 4 (weights 1/(1+penalty) would give 2 in 3); with 0, 0 and 1 the
     shares are 5/12, 5/12 and 1/6.

Ties. LONGEST_IDLE, FEWEST_CALLS and LEAST_TALK_TIME break a tie by the higher total level
in the needed skills (the better-suited agent), then by `order`; every other choice breaks
ties by `order`; equal `order`s fall back to the extension, so every pick is reproducible.
The random strategies draw over the candidates in that same order, so a seeded `Random`
repeats its picks.

The round-robin strategies remember the agent they ring in `QueueMemory.last_rung`; no other
strategy reads or writes it, and a pick that finds nobody leaves it as it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

SKILL_LEVELS = range(1, 11)
"""The levels of a skill, an agent's or what a call needs: 1 (a beginner) to 10."""


class Strategy(StrEnum):
    """How a queue picks among its candidate agents; see the module's docstring."""

    RING_ALL = "ring-all"
    ROUND_ROBIN = "round-robin"
    ROUND_ROBIN_ORDERED = "round-robin-ordered"
    LONGEST_IDLE = "longest-idle"
    FEWEST_CALLS = "fewest-calls"
    LEAST_TALK_TIME = "least-talk-time"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"
    LINEAR = "linear"


STRATEGY_ALIASES: Mapping[str, Strategy] = {
    # Asterisk app_queue (queues.conf `strategy`); "roundrobin" is its old name of rrmemory.
    "ringall": Strategy.RING_ALL,
    "leastrecent": Strategy.LONGEST_IDLE,
    "fewestcalls": Strategy.FEWEST_CALLS,
    "rrmemory": Strategy.ROUND_ROBIN,
    "roundrobin": Strategy.ROUND_ROBIN,
    "rrordered": Strategy.ROUND_ROBIN_ORDERED,
    "wrandom": Strategy.WEIGHTED_RANDOM,
    # FreeSWITCH mod_callcenter (callcenter.conf `strategy`).
    "longest-idle-agent": Strategy.LONGEST_IDLE,
    "agent-with-fewest-calls": Strategy.FEWEST_CALLS,
    "agent-with-least-talk-time": Strategy.LEAST_TALK_TIME,
    "top-down": Strategy.LINEAR,
    "sequentially-by-agent-order": Strategy.LINEAR,
}
"""Asterisk and FreeSWITCH names of our strategies (those they spell as we do are not here)."""

_STRATEGY_NAMES: Mapping[str, Strategy] = {**{s.value: s for s in Strategy}, **STRATEGY_ALIASES}

_ROUND_ROBINS = frozenset({Strategy.ROUND_ROBIN, Strategy.ROUND_ROBIN_ORDERED})


def parse_strategy(text: str) -> Strategy:
    """The strategy named `text`: one of ours or an Asterisk / FreeSWITCH alias, in any case,
    with `_` for `-` allowed. ValueError naming `text` and the valid names otherwise."""
    strategy = _STRATEGY_NAMES.get(text.strip().lower().replace("_", "-"))
    if strategy is None:
        raise ValueError(
            f"unknown queue strategy {text!r}: valid are {', '.join(Strategy)}"
            f" (or the Asterisk / FreeSWITCH names {', '.join(STRATEGY_ALIASES)})")
    return strategy


def _check_skill_levels(owner: str, skills: Mapping[str, int]) -> None:
    for skill, level in skills.items():
        if level not in SKILL_LEVELS:
            raise ValueError(f"{owner}: skill {skill!r} has level {level},"
                             f" not {SKILL_LEVELS[0]}-{SKILL_LEVELS[-1]}")


@dataclass(frozen=True, slots=True)
class AgentView:
    """A member of the queue as the strategies see it at the moment of a pick."""

    extension: str
    """What to ring; unique in the queue."""
    order: int
    """Its position in the queue's member list (LINEAR, ROUND_ROBIN_ORDERED and every tie)."""
    penalty: int
    """Its tier, 0 the best (WEIGHTED_RANDOM: its weight)."""
    skills: Mapping[str, int]
    """Skill -> level, 1-10."""
    calls_taken: int
    """Calls it has answered from this queue (FEWEST_CALLS)."""
    talk_seconds: float
    """Seconds it has talked on this queue's calls (LEAST_TALK_TIME)."""
    idle_since: float
    """Monotonic seconds since which it has been idle, lower = idle longer (LONGEST_IDLE)."""
    available: bool
    """Logged in, not paused, not ringing, not on a call and not in wrap-up: for the caller
    to work out."""

    def __post_init__(self) -> None:
        if self.penalty < 0:
            raise ValueError(f"agent {self.extension}: penalty {self.penalty} is negative")
        _check_skill_levels(f"agent {self.extension}", self.skills)


@dataclass(frozen=True, slots=True)
class CallNeeds:
    """What a waiting call needs of the agent who answers it."""

    skills: Mapping[str, int] = field(default_factory=dict)
    """Skill -> the minimum level, 1-10; empty: anybody will do."""

    def __post_init__(self) -> None:
        _check_skill_levels("call", self.skills)


@dataclass(slots=True)
class QueueMemory:
    """What a queue remembers from one pick to the next; one per queue."""

    last_rung: str | None = None
    """The extension the round-robin strategies rang last; None: none yet."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of a pick."""

    ring: list[str]
    """The extensions to ring now: the whole tier for RING_ALL, one agent otherwise, none when
    nobody fits."""
    tier: int | None
    """The penalty tier they were chosen from; None when nobody fits, and for
    WEIGHTED_RANDOM, which chooses across tiers."""


def pick(strategy: Strategy, agents: Sequence[AgentView], needs: CallNeeds, memory: QueueMemory,
         rng: random.Random) -> Selection:
    """The agents to ring for the queue's next waiting call; see the module's docstring."""
    available = _in_order(agent for agent in agents if agent.available and _qualifies(agent, needs))
    if not available:
        return Selection(ring=[], tier=None)
    if strategy is Strategy.WEIGHTED_RANDOM:
        return Selection(ring=[_weighted_random(available, rng).extension], tier=None)
    tier = min(agent.penalty for agent in available)
    candidates = [agent for agent in available if agent.penalty == tier]
    if strategy is Strategy.RING_ALL:
        return Selection(ring=[agent.extension for agent in candidates], tier=tier)
    chosen = _choose(strategy, candidates, agents, needs, memory, rng)
    if strategy in _ROUND_ROBINS:
        memory.last_rung = chosen.extension
    return Selection(ring=[chosen.extension], tier=tier)


def _choose(strategy: Strategy, candidates: list[AgentView], agents: Sequence[AgentView],
            needs: CallNeeds, memory: QueueMemory, rng: random.Random) -> AgentView:
    """The one agent a single-agent strategy rings among `candidates` (of one tier, in order)."""
    match strategy:
        case Strategy.LINEAR:
            return candidates[0]
        case Strategy.ROUND_ROBIN:
            return _next_after(candidates, memory.last_rung, lambda agent: agent.extension)
        case Strategy.ROUND_ROBIN_ORDERED:
            last = next((_order_key(agent) for agent in agents if agent.extension == memory.last_rung),
                        None)
            return _next_after(candidates, last, _order_key)
        case Strategy.LONGEST_IDLE:
            return _least(candidates, needs, lambda agent: agent.idle_since)
        case Strategy.FEWEST_CALLS:
            return _least(candidates, needs, lambda agent: agent.calls_taken)
        case Strategy.LEAST_TALK_TIME:
            return _least(candidates, needs, lambda agent: agent.talk_seconds)
        case Strategy.RANDOM:
            return rng.choice(candidates)
        case Strategy.RING_ALL | Strategy.WEIGHTED_RANDOM:
            raise ValueError(f"strategy {strategy} does not choose one agent of a tier")


def _qualifies(agent: AgentView, needs: CallNeeds) -> bool:
    return all(agent.skills.get(skill, 0) >= level for skill, level in needs.skills.items())


def _order_key(agent: AgentView) -> tuple[int, str]:
    return agent.order, agent.extension


def _in_order(agents: Iterable[AgentView]) -> list[AgentView]:
    return sorted(agents, key=_order_key)


_RotationKey = TypeVar("_RotationKey", str, tuple[int, str])


def _next_after(candidates: list[AgentView], last: _RotationKey | None,
                rotation_key: Callable[[AgentView], _RotationKey]) -> AgentView:
    """The first candidate after `last` in the rotation, wrapping round to the first."""
    rotation = sorted(candidates, key=rotation_key)
    if last is None:
        return rotation[0]
    return next((agent for agent in rotation if rotation_key(agent) > last), rotation[0])


def _least(candidates: list[AgentView], needs: CallNeeds,
           metric: Callable[[AgentView], float]) -> AgentView:
    """The candidate with the lowest metric; ties to the higher total level in the needed
    skills, then to the first in order."""
    def rank(agent: AgentView) -> tuple[float, int, int, str]:
        skill_total = sum(agent.skills[skill] for skill in needs.skills)
        return metric(agent), -skill_total, agent.order, agent.extension
    return min(candidates, key=rank)


def _weighted_random(candidates: list[AgentView], rng: random.Random) -> AgentView:
    """Asterisk's wrandom: the lowest of draws from [0, 1 + penalty); ties to the first in order."""
    draws = [(rng.random() * (1 + agent.penalty), index) for index, agent in enumerate(candidates)]
    return candidates[min(draws)[1]]
