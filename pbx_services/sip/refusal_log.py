"""The log of refused requests: at most one line per source address and interval.

A scanner or a fuzzer sends thousands of broken requests a minute; each is answered and
counted (`SipStack.counters`, on /metrics), but a line each would bury the log. The first
refusal from an address is logged; later ones within `interval` are counted, and the
address's next line (once the interval has passed) says how many were not logged.

Memory is bounded under a flood from spoofed addresses: at most `max_sources` addresses are
remembered, the one logged longest ago forgotten first once its interval has passed. While
every remembered address is still within its interval, refusals from any other address are
counted together under one summary line per interval ("... and N more from other sources").

Sans-IO: the time is passed in.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

REFUSAL_LOG_INTERVAL = 60.0
"""Seconds between two lines about the same source address."""
REFUSAL_LOG_SOURCES = 1024
"""Source addresses remembered at most."""

_REFUSED = "refused request from %s:%s with %d: %s"


@dataclass(slots=True)
class _Logged:
    at: float
    """When the last line about the source was logged."""
    unlogged: int = 0
    """Refusals since then, not logged."""


class RefusalLog:
    def __init__(self, *, logger: logging.Logger, interval: float = REFUSAL_LOG_INTERVAL,
                 max_sources: int = REFUSAL_LOG_SOURCES) -> None:
        self._log = logger
        self._interval = interval
        self._max_sources = max_sources
        self._sources: OrderedDict[str, _Logged] = OrderedDict()
        """By address, the one logged longest ago first."""
        self._others: _Logged | None = None
        """Refusals from addresses there was no room to remember."""

    def __len__(self) -> int:
        """Addresses remembered."""
        return len(self._sources)

    def refused(self, source: tuple[str, int], status_code: int, reason: str, now: float) -> None:
        """Note a request from `source` refused with `status_code`; log it if it is due."""
        address = source[0]
        logged = self._sources.get(address)
        if logged is None and not self._make_room(now):
            self._refused_by_another(source, status_code, reason, now)
            return
        if logged is not None and now - logged.at < self._interval:
            logged.unlogged += 1
            return
        if logged is not None and logged.unlogged:
            self._log.info(_REFUSED + " (and %d more from %s not logged in the last %.0f s)", *source,
                           status_code, reason, logged.unlogged, address, now - logged.at)
        else:
            self._log.info(_REFUSED, *source, status_code, reason)
        self._sources[address] = _Logged(at=now)
        self._sources.move_to_end(address)

    def _make_room(self, now: float) -> bool:
        """Whether a new address can be remembered, forgetting one whose interval has passed."""
        if len(self._sources) < self._max_sources:
            return True
        _, oldest = next(iter(self._sources.items()))
        if now - oldest.at < self._interval:
            return False
        self._sources.popitem(last=False)
        return True

    def _refused_by_another(self, source: tuple[str, int], status_code: int, reason: str,
                            now: float) -> None:
        others = self._others
        if others is not None and now - others.at < self._interval:
            others.unlogged += 1
            return
        if others is None:
            self._log.info(_REFUSED + " (more than %d sources within %.0f s: refusals from the others "
                           "share one line per %.0f s)", *source, status_code, reason, self._max_sources,
                           self._interval, self._interval)
        else:
            self._log.info(_REFUSED + " (and %d more from other sources not logged in the last %.0f s)",
                           *source, status_code, reason, others.unlogged, now - others.at)
        self._others = _Logged(at=now)
