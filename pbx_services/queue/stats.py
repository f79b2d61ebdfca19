"""A queue's numbers since its server started: offered, answered, abandoned and after how long,
the service level in Asterisk's two definitions, and the wait to expect.

`service_level` (Asterisk's servicelevelperf): the share of answered calls answered within the
queue's threshold. `service_level_all` (servicelevelperf2): the same over answered and
abandoned calls, so that callers who gave up count against it. The expected wait is an
exponentially weighted average of the waits of answered calls (Asterisk's holdtime).
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
