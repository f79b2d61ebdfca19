"""The registrar (RFC 3261 section 10.3): REGISTER authenticated, bindings kept in the location store.

A REGISTER reads the address of record's bindings once, works out every change (added,
refreshed and removed contacts, a device's old contact replaced, the oldest over the limit
dropped) and writes them in one `update`: two round trips when the store is Redis. When the
store is away, the REGISTER is refused with 500 and Retry-After rather than answered 200 and
lost: the phone tries again and is registered once the store is back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

from ..cluster.state.location import Binding, LocationStore
from ..sip.errors import RemoteProtocolError
from ..sip.headers import unquote
from ..sip.message import SipRequest
from ..sip.stack import SipStack, warning
from ..sip.transaction import ServerTransaction, make_tag
from ..sip.uri import SipUri
from .auth import Authenticator


@dataclass(frozen=True, slots=True)
class RegistrarSettings:
    min_expires: int
    max_expires: int
    default_expires: int
    max_contacts: int


class Registrar:
    def __init__(self, *, stack: SipStack, location: LocationStore, authenticator: Authenticator,
                 realm_for: Callable[[str], str | None], settings: RegistrarSettings,
                 wall_offset: float = 0.0) -> None:
        self._stack = stack
        self._location = location
        self._auth = authenticator
        self._realm_for = realm_for
        self._settings = settings
        self._wall_offset = wall_offset

    def handle(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int], transport: str,
               now: float) -> None:
        if not isinstance(request.to.uri, SipUri):
            self._stack.respond(tx, 400, "To Of REGISTER Must Be A SIP URI", now=now)
            return
        to_uri = request.to.uri
        realm = self._realm_for(to_uri.host)
        if realm is None:
            self._stack.respond(tx, 403, "Unknown Domain", now=now, to_tag=_tag(tx))
            return
        result = self._auth.authenticate(request, realm=realm, source_ip=source[0], now=now, proxy=False)
        if result.user is None:
            assert result.status_code is not None
            self._stack.respond(tx, result.status_code, now=now, headers=result.headers, to_tag=_tag(tx))
            return
        user = to_uri.user_unescaped
        if user != result.user.extension:
            # Authenticated as one extension, registering another: refused (RFC 3261 10.3 step 6).
            self._stack.respond(tx, 403, "Not Allowed To Register This AOR", now=now, to_tag=_tag(tx))
            return
        aor = f"sip:{user}@{realm}"
        wall = now + self._wall_offset
        try:
            bindings = self._update_bindings(request, aor, source, transport, wall)
        except _IntervalTooBrief:
            self._stack.respond(tx, 423, now=now, to_tag=_tag(tx),
                                headers=[("Min-Expires", str(self._settings.min_expires))])
            return
        except RemoteProtocolError as exc:
            self._stack.respond(tx, exc.status_code, now=now, to_tag=_tag(tx),
                                # The stack's Warning: the peer's text in it must not break the quoted-string.
                                headers=[("Warning", warning(exc.reason))])
            return
        headers = [("Contact", f"<{b.contact}>;expires={b.remaining(wall)}") for b in bindings]
        headers.append(("Date", formatdate(wall, usegmt=True)))
        self._stack.respond(tx, 200, now=now, to_tag=_tag(tx), headers=headers)

    def _update_bindings(self, request: SipRequest, aor: str, source: tuple[str, int], transport: str,
                         now: float) -> list[Binding]:
        """Apply the REGISTER to `aor`'s bindings (`now` is wall-clock); the live bindings after."""
        call_id, cseq = request.call_id, request.cseq.seq
        header_expires = request.expires
        current = self._location.lookup(aor, now)
        if request.contact_is_star:
            if header_expires != 0:
                raise RemoteProtocolError("Contact: * needs Expires: 0")
            _check_order(current, call_id, cseq)
            return self._location.update(aor, remove=[b.contact for b in current], now=now)
        changes: list[tuple[str, int, float, str | None]] = []
        for contact in request.contacts:
            raw = contact.params.get("expires")
            if raw is not None and not raw.isdigit():
                raise RemoteProtocolError(f"Contact expires is not a number: {raw!r}")
            expires = int(raw) if raw is not None else header_expires
            if expires is None:
                expires = self._settings.default_expires
            if 0 < expires < self._settings.min_expires:
                raise _IntervalTooBrief
            q = _q_value(contact.params.get("q"))
            instance = contact.params.get("+sip.instance")
            changes.append((str(contact.uri), min(expires, self._settings.max_expires), q,
                            unquote(instance) if instance else None))
        existing = {b.contact: b for b in current}
        _check_order([existing[uri] for uri, _, _, _ in changes if uri in existing], call_id, cseq)
        if not changes:
            return current  # a query: the bindings as they are
        user_agent = request.headers.get("User-Agent") or ""
        after = dict(existing)
        fresh: dict[str, Binding] = {}
        removed: list[str] = []
        for contact_uri, expires, q, instance in changes:
            if expires == 0:
                after.pop(contact_uri, None)
                fresh.pop(contact_uri, None)
                removed.append(contact_uri)
                continue
            if instance is not None:
                for old in existing.values():
                    if old.instance_id == instance and old.contact != contact_uri:
                        after.pop(old.contact, None)
                        removed.append(old.contact)
            after[contact_uri] = fresh[contact_uri] = Binding(
                aor=aor, contact=contact_uri, expires_at=now + expires, call_id=call_id, cseq=cseq,
                source=source, transport=transport, refreshed_at=now, q=q, user_agent=user_agent,
                instance_id=instance)
        # Over the limit, the bindings that were refreshed longest ago give way (the lowest q
        # among those refreshed together), whatever time they have left.
        surplus = len(after) - self._settings.max_contacts
        for stale in sorted(after.values(), key=lambda b: (b.refreshed_at, b.q))[:max(surplus, 0)]:
            del after[stale.contact]
            fresh.pop(stale.contact, None)
            removed.append(stale.contact)
        return self._location.update(aor, save=list(fresh.values()), remove=removed, now=now)


class _IntervalTooBrief(Exception):
    pass


def _check_order(bindings: list[Binding], call_id: str, cseq: int) -> None:
    """RFC 3261 10.3 steps 6 and 7: a REGISTER older than the one that made a binding fails."""
    for binding in bindings:
        if binding.call_id == call_id and binding.cseq >= cseq:
            raise RemoteProtocolError("REGISTER is out of order for this Call-ID", status_code=500)


def _q_value(raw: str | None) -> float:
    if raw is None:
        return 1.0
    try:
        q = float(raw)
    except ValueError:
        raise RemoteProtocolError(f"Contact q is not a number: {raw!r}") from None
    if not 0.0 <= q <= 1.0:
        raise RemoteProtocolError(f"Contact q is out of range: {raw!r}")
    return q


def _tag(tx: ServerTransaction) -> str:
    # One To tag per transaction, so a retransmitted answer carries the same one.
    if not isinstance(tx.user_data, str):
        tx.user_data = make_tag()
    return tx.user_data
