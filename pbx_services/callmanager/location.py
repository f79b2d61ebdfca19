"""The location service: which contacts each address of record is reachable at, until when.

In-process here (all-in-one and one Call Manager); the same interface will be served by
the Redis state store in a cluster. Time is passed in; expired bindings are removed by
`handle_timer(now)` and reported so registration events can be published.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(slots=True)
class Binding:
    """One registered contact of an address of record."""

    aor: str
    """`sip:user@domain` the binding belongs to."""
    contact: str
    """The Contact URI as the phone sent it (the Request-URI of calls to it)."""
    expires_at: float
    """Clock time when the binding lapses unless refreshed."""
    call_id: str
    """Call-ID of the REGISTER that made or refreshed it (RFC 3261 10.3 step 7)."""
    cseq: int
    """CSeq of that REGISTER; a lower one with the same Call-ID is out of order."""
    source: tuple[str, int]
    """Where the REGISTER came from: requests go there, which also works behind NAT."""
    transport: str
    """"UDP" or "TCP": the transport the REGISTER arrived on."""
    refreshed_at: float
    """Clock time of that REGISTER: over the contact limit, the longest unrefreshed give way."""
    q: float = 1.0
    user_agent: str = ""
    instance_id: str | None = None
    """RFC 5626 +sip.instance, to replace a device's old contact when it re-registers."""

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


class LocationService:
    """Bindings per address of record, with expiry."""

    def __init__(self) -> None:
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._expiry: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return len(self._bindings)

    def binding_count(self) -> int:
        return sum(len(contacts) for contacts in self._bindings.values())

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of `aor`, highest q first, most recently refreshed first among equals."""
        contacts = self._bindings.get(aor)
        if not contacts:
            return []
        live = [b for b in contacts.values() if b.expires_at > now]
        live.sort(key=lambda b: (-b.q, -b.refreshed_at))
        return live

    def save(self, binding: Binding) -> None:
        contacts = self._bindings.setdefault(binding.aor, {})
        contacts[binding.contact] = binding
        heapq.heappush(self._expiry, (binding.expires_at, binding.aor, binding.contact))

    def remove(self, aor: str, contact: str) -> Binding | None:
        contacts = self._bindings.get(aor)
        if not contacts:
            return None
        binding = contacts.pop(contact, None)
        if not contacts:
            del self._bindings[aor]
        return binding

    def remove_all(self, aor: str) -> list[Binding]:
        return list(self._bindings.pop(aor, {}).values())

    def next_timer(self) -> float | None:
        return self._expiry[0][0] if self._expiry else None

    def handle_timer(self, now: float) -> list[Binding]:
        """Drop every binding whose time is up; returns them."""
        expired = []
        while self._expiry and self._expiry[0][0] <= now:
            _, aor, contact = heapq.heappop(self._expiry)
            binding = self._bindings.get(aor, {}).get(contact)
            # A refreshed binding has a later expires_at; its newer heap entry will handle it.
            if binding is not None and binding.expires_at <= now:
                self.remove(aor, contact)
                expired.append(binding)
        return expired
