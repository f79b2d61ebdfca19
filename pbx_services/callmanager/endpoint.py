"""A backend endpoint as a Call Manager's pools see it: a media worker or an application-server
worker, its weight, its calls, and whether it is up (Kamailio dispatcher semantics).

After `down_after` missed probes in a row an endpoint is down; after `up_after` answers in a
row it is up again. An endpoint is taken as up until its probes say otherwise, so that calls
work from the first second. New calls go to the available endpoint with the fewest calls
per unit of weight. The media pool (control pings) and the application-server pool (SIP
OPTIONS) each add what their probes need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Endpoint:
    server: str
    """Name of its server's row."""
    address: tuple[str, int]
    weight: int
    enabled: bool
    up: bool = True
    """Taken as up until probes say otherwise, so that calls work from the first second."""
    misses: int = 0
    answers: int = 0
    calls: set[Any] = field(default_factory=set)
    """The calls it holds (the B2BUA's objects)."""
    removed: bool = False
    """Its server left the database: no new calls; its calls stay until they end."""

    @property
    def available(self) -> bool:
        return self.up and self.enabled and not self.removed

    @property
    def load(self) -> float:
        return len(self.calls) / self.weight

    def __str__(self) -> str:
        return f"{self.server} {self.address[0]}:{self.address[1]}"

    def count_miss(self, down_after: int) -> bool:
        """A missed probe; whether it takes the endpoint down."""
        self.answers = 0
        self.misses += 1
        if self.up and self.misses >= down_after:
            self.up = False
            return True
        return False

    def count_answer(self, up_after: int) -> bool:
        """An answered probe; whether it brings the endpoint up again."""
        self.misses = 0
        self.answers += 1
        if not self.up and self.answers >= up_after:
            self.up = True
            return True
        return False
