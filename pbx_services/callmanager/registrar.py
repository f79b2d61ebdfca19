"""The registrar (RFC 3261 section 10.3): REGISTER authenticated, bindings kept in the location service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

from ..sip.errors import RemoteProtocolError
from ..sip.headers import unquote
from ..sip.message import SipRequest
from ..sip.transaction import ServerTransaction, make_tag
from ..sip.uri import SipUri
from .auth import Authenticator
from .location import Binding, LocationService
from .stack import SipStack, warning


@dataclass(frozen=True, slots=True)
class RegistrarSettings:
    min_expires: int
    max_expires: int
    default_expires: int
    max_contacts: int


class Registrar:
    def __init__(self, *, stack: SipStack, location: LocationService, authenticator: Authenticator,
                 realm_for: Callable[[str], str], settings: RegistrarSettings,
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
        try:
            self._update_bindings(request, aor, source, transport, now)
        except _IntervalTooBrief:
            self._stack.respond(tx, 423, now=now, to_tag=_tag(tx),
                                headers=[("Min-Expires", str(self._settings.min_expires))])
            return
        except RemoteProtocolError as exc:
            self._stack.respond(tx, exc.status_code, now=now, to_tag=_tag(tx),
                                # The stack's Warning: the peer's text in it must not break the quoted-string.
                                headers=[("Warning", warning(exc.reason))])
            return
        bindings = self._location.lookup(aor, now)
        headers = [("Contact", f"<{b.contact}>;expires={b.remaining(now)}") for b in bindings]
        headers.append(("Date", formatdate(now + self._wall_offset, usegmt=True)))
        self._stack.respond(tx, 200, now=now, to_tag=_tag(tx), headers=headers)

    def _update_bindings(self, request: SipRequest, aor: str, source: tuple[str, int], transport: str,
                         now: float) -> None:
        call_id, cseq = request.call_id, request.cseq.seq
        header_expires = request.expires
        if request.contact_is_star:
            if header_expires != 0:
                raise RemoteProtocolError("Contact: * needs Expires: 0")
            _check_order(self._location.lookup(aor, now), call_id, cseq)
            self._location.remove_all(aor)
            return
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
        existing = {b.contact: b for b in self._location.lookup(aor, now)}
        _check_order([existing[uri] for uri, _, _, _ in changes if uri in existing], call_id, cseq)
        user_agent = request.headers.get("User-Agent") or ""
        for contact_uri, expires, q, instance in changes:
            if expires == 0:
                self._location.remove(aor, contact_uri)
                continue
            if instance is not None:
                for old in existing.values():
                    if old.instance_id == instance and old.contact != contact_uri:
                        self._location.remove(aor, old.contact)
            self._location.save(Binding(aor=aor, contact=contact_uri, expires_at=now + expires,
                                        call_id=call_id, cseq=cseq, source=source, transport=transport,
                                        refreshed_at=now, q=q, user_agent=user_agent, instance_id=instance))
        live = self._location.lookup(aor, now)
        # Over the limit, the bindings that were refreshed longest ago give way (the lowest q
        # among those refreshed together), whatever time they have left.
        surplus = len(live) - self._settings.max_contacts
        for stale in sorted(live, key=lambda b: (b.refreshed_at, b.q))[:max(surplus, 0)]:
            self._location.remove(aor, stale.contact)


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
