"""The location service: which contacts each address of record is reachable at, until when.

`LocationStore` is what the registrar and the B2BUA need of it; `InMemoryLocation` keeps it
in this process (the all-in-one), `redis.RedisLocation` in the cluster's Redis, shared by
every Call Manager worker. Times are wall-clock seconds (time.time()), the one clock every
process and host agrees on; expired bindings are never returned, and `purge` drops them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class Binding:
    """One registered contact of an address of record."""

    aor: str
    """`sip:user@domain` the binding belongs to."""
    contact: str
    """The Contact URI as the phone sent it (the Request-URI of calls to it)."""
    expires_at: float
    """Wall-clock time when the binding lapses unless refreshed."""
    call_id: str
    """Call-ID of the REGISTER that made or refreshed it (RFC 3261 10.3 step 7)."""
    cseq: int
    """CSeq of that REGISTER; a lower one with the same Call-ID is out of order."""
    source: tuple[str, int]
    """Where the REGISTER came from: requests go there, which also works behind NAT."""
    transport: str
    """"UDP" or "TCP": the transport the REGISTER arrived on."""
    refreshed_at: float
    """Wall-clock time of that REGISTER: over the contact limit, the longest unrefreshed give way."""
    q: float = 1.0
    user_agent: str = ""
    instance_id: str | None = None
    """RFC 5626 +sip.instance, to replace a device's old contact when it re-registers."""

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


def by_preference(bindings: Sequence[Binding]) -> list[Binding]:
    """Highest q first, most recently refreshed first among equals: the order calls try them in."""
    return sorted(bindings, key=lambda b: (-b.q, -b.refreshed_at))


class LocationStore(Protocol):
    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of `aor`, in `by_preference` order."""
        ...

    def update(self, aor: str, *, save: Sequence[Binding] = (), remove: Sequence[str] = (),
               now: float) -> list[Binding]:
        """Remove the `remove` contacts, save (add or replace) the `save` bindings; the live
        bindings of `aor` afterwards, in `by_preference` order."""
        ...

    def binding_count(self) -> int:
        """Bindings held (expired ones included until the next purge)."""
        ...

    def purge(self, now: float) -> int:
        """Drop the bindings expired at `now`; how many went."""
        ...


class InMemoryLocation:
    """Bindings per address of record, in this process."""

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._expiry: list[tuple[float, str, str]] = []

    def lookup(self, aor: str, now: float) -> list[Binding]:
        contacts = self._bindings.get(aor)
        if not contacts:
            return []
        return by_preference([b for b in contacts.values() if b.expires_at > now])

    def update(self, aor: str, *, save: Sequence[Binding] = (), remove: Sequence[str] = (),
               now: float) -> list[Binding]:
        contacts = self._bindings.setdefault(aor, {})
        for contact in remove:
            contacts.pop(contact, None)
        for binding in save:
            contacts[binding.contact] = binding
            heapq.heappush(self._expiry, (binding.expires_at, aor, binding.contact))
        if not contacts:
            del self._bindings[aor]
        return self.lookup(aor, now)

    def binding_count(self) -> int:
        return sum(len(contacts) for contacts in self._bindings.values())

    def purge(self, now: float) -> int:
        purged = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, aor, contact = heapq.heappop(self._expiry)
            contacts = self._bindings.get(aor)
            binding = contacts.get(contact) if contacts else None
            # A refreshed binding has a later expires_at; its newer heap entry will handle it.
            if contacts is not None and binding is not None and binding.expires_at <= now:
                del contacts[contact]
                if not contacts:
                    del self._bindings[aor]
                purged += 1
        return purged
