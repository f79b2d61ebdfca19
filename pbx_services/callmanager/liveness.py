"""Whether a backend endpoint is up, from its probes (Kamailio dispatcher semantics).

After `down_after` missed probes in a row an endpoint is down; after `up_after` answers in a
row it is up again. An endpoint is taken as up until its probes say otherwise, so that calls
work from the first second. The media pool (control pings) and the application-server pool
(SIP OPTIONS) keep one of these per endpoint.
"""

from __future__ import annotations


class Liveness:
    """Mixed into an endpoint dataclass that has `up`, `misses` and `answers` fields."""

    up: bool
    misses: int
    answers: int

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
