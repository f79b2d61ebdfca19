"""A queue's numbers since its server started: offered, answered, abandoned and after how long,
the service level in Asterisk's two definitions, and the wait to expect.

`service_level` (Asterisk's servicelevelperf): the share of answered calls answered within the
queue's threshold. `service_level_all` (servicelevelperf2): the same over answered and
abandoned calls, so that callers who gave up count against it. The expected wait is an
exponentially weighted average of the waits of answered calls (Asterisk's holdtime).

`AgentStats` are an agent's numbers as one queue worker sees them, sampled every second from the
state store's record of the agent (whichever queue or server gave it its calls) and from the
queues of this worker it is a member of. Occupancy is the industry's: the time an agent handles
calls (talking, then in wrap-up) over its staffed time, where staffed is logged in and not
paused in at least one of those queues, or handling a call. Pauses and logged-out time count
neither way, so an agent paused for lunch is not shown as idle.
"""

from __future__ import annotations

from dataclasses import dataclass

WAIT_WEIGHT = 0.25
"""Weight of the newest answered call's wait in the expected wait."""


@dataclass
class QueueStats:
    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_within: int = 0
    overflowed: int = 0
    refused: int = 0
    wait_answered: float = 0.0
    """Seconds waited in all by the answered calls."""
    wait_abandoned: float = 0.0
    average_wait: float | None = None
    """The exponentially weighted wait of answered calls; None before the first."""

    def answer(self, waited: float, threshold: float) -> None:
        self.answered += 1
        self.answered_within += waited <= threshold
        self.wait_answered += waited
        self.average_wait = waited if self.average_wait is None else \
            (1 - WAIT_WEIGHT) * self.average_wait + WAIT_WEIGHT * waited

    def abandon(self, waited: float, threshold: float) -> None:
        self.abandoned += 1
        self.abandoned_within += waited <= threshold
        self.wait_abandoned += waited

    def expected_wait(self) -> float | None:
        """Seconds a caller at the head of the line may expect to wait."""
        return self.average_wait

    @property
    def service_level(self) -> float | None:
        return self.answered_within / self.answered if self.answered else None

    @property
    def service_level_all(self) -> float | None:
        handled = self.answered + self.abandoned
        return self.answered_within / handled if handled else None


@dataclass
class AgentStats:
    """An agent's numbers since this worker first sampled it (see the module's doc)."""

    calls: int = 0
    """Queue calls it took and ended (the Call Manager counts them in its record at the call's end)."""
    talk_seconds: float = 0.0
    """Seconds it talked on those calls."""
    staffed_seconds: float = 0.0
    """Seconds it was logged in and not paused, or handling a call."""
    handling_seconds: float = 0.0
    """Of those, seconds it was on a queue call or in wrap-up."""
    _counted: tuple[int, float] | None = None
    """The record's calls taken and talk seconds at the last sample."""

    def sample(self, seconds: float, *, staffed: bool, handling: bool, calls_taken: int,
               talk_seconds: float) -> None:
        """Count the `seconds` since the last sample, and the calls the record counted meanwhile."""
        if self._counted is not None and calls_taken >= self._counted[0]:
            self.calls += calls_taken - self._counted[0]
            self.talk_seconds += max(talk_seconds - self._counted[1], 0.0)
        self._counted = (calls_taken, talk_seconds)  # a record that expired and started again: anew
        if staffed or handling:
            self.staffed_seconds += seconds
        if handling:
            self.handling_seconds += seconds

    @property
    def occupancy(self) -> float | None:
        """Handling over staffed seconds; None before it was staffed."""
        return self.handling_seconds / self.staffed_seconds if self.staffed_seconds else None
