"""Call forwarding and do-not-disturb of users, in the system of record.

A user's calls can go elsewhere: always (instead of ringing), when busy (every device
refused it busy, or do-not-disturb is on), when nobody answers within N seconds, and when no
device is registered (unreachable). A destination is a number of the user's tenant: an
extension, an IVR menu, a queue or a meeting room, or a number one of the tenant's outbound
routes takes (a mobile phone through a trunk), or `voicemail`, the user's own mailbox (which it
must have: `pbx voicemail enable`). One that reaches nothing is refused when saved, naming it.
The Call Manager reads these within 10 seconds (`callmanager.forwarding`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import UserDao
from pbx_services.cluster.dial_patterns import compile_pattern
from pbx_services.cluster.models import CallForwarding, Mailbox, OutboundRoute, Tenant, User
from pbx_services.cluster.models.forwarding import DEFAULT_NO_ANSWER_SECONDS
from pbx_services.cluster.numbering import number_owner
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_extension
from pbx_services.cluster.voicemail import VOICEMAIL_DESTINATION

NO_ANSWER_SECONDS = range(5, 301)


class ForwardKind(enum.StrEnum):
    ALWAYS = "always"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class ForwardingInfo:
    extension: str
    tenant_domain: str
    always: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    no_answer_seconds: int = DEFAULT_NO_ANSWER_SECONDS
    unreachable: str | None = None
    dnd: bool = False

    def describe(self) -> str:
        """One line for an administrator: what is set, or that nothing is."""
        parts = [f"{kind.value.replace('_', ' ')} -> {getattr(self, kind.value)}"
                 + (f" after {self.no_answer_seconds} s" if kind is ForwardKind.NO_ANSWER else "")
                 for kind in ForwardKind if getattr(self, kind.value)]
        if self.dnd:
            parts.append("do not disturb")
        return f"{self.extension}@{self.tenant_domain}: {', '.join(parts) or 'no forwarding'}"


class ForwardingService:
    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def forward(self, extension: str, kind: ForwardKind, destination: str | None, *,
                seconds: int | None = None, tenant_domain: str | None = None) -> ForwardingInfo:
        """Forward `extension`'s calls of `kind` to `destination`; None turns that forwarding off.
        `seconds`: how long a call rings before it is forwarded (no answer only, 5-300)."""
        if seconds is not None:
            if kind is not ForwardKind.NO_ANSWER:
                raise InvalidValue("seconds: only a forward on no answer waits")
            check_range("no answer seconds", seconds, NO_ANSWER_SECONDS, "s")
        with self._sessions.begin() as session:
            tenant, user, forwarding = self._row(session, extension, tenant_domain)
            setattr(forwarding, kind.value, _destination(session, tenant, user, kind, destination))
            if seconds is not None:
                forwarding.no_answer_seconds = seconds
            return _info(forwarding, user.extension, tenant.domain)

    def set_forwarding(self, extension: str, *, always: str | None, busy: str | None, no_answer: str | None,
                       no_answer_seconds: int, unreachable: str | None, dnd: bool,
                       tenant_domain: str | None = None) -> ForwardingInfo:
        """Every forward of `extension` (None: off) and its do-not-disturb at once, as a form
        gives them: all saved, or none when one is refused (InvalidValue naming it)."""
        check_range("no answer seconds", no_answer_seconds, NO_ANSWER_SECONDS, "s")
        wanted = {ForwardKind.ALWAYS: always, ForwardKind.BUSY: busy, ForwardKind.NO_ANSWER: no_answer,
                  ForwardKind.UNREACHABLE: unreachable}
        with self._sessions.begin() as session:
            tenant, user, forwarding = self._row(session, extension, tenant_domain)
            for kind, destination in wanted.items():
                setattr(forwarding, kind.value, _destination(session, tenant, user, kind, destination))
            forwarding.no_answer_seconds, forwarding.dnd = no_answer_seconds, dnd
            return _info(forwarding, user.extension, tenant.domain)

    def set_dnd(self, extension: str, on: bool, *, tenant_domain: str | None = None) -> ForwardingInfo:
        with self._sessions.begin() as session:
            tenant, user, forwarding = self._row(session, extension, tenant_domain)
            forwarding.dnd = on
            return _info(forwarding, user.extension, tenant.domain)

    def get(self, extension: str, *, tenant_domain: str | None = None) -> ForwardingInfo:
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            user = UserDao(session=session).get_by(tenant_id=tenant.id, extension=extension)
            found = session.get(CallForwarding, user.id)
            return _info(found, user.extension, tenant.domain)

    def _row(self, session: Session, extension: str,
             tenant_domain: str | None) -> tuple[Tenant, User, CallForwarding]:
        """The user's forwarding row, added (nothing set) if it has none."""
        tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
        user = UserDao(session=session).get_by(tenant_id=tenant.id, extension=extension)
        forwarding = session.get(CallForwarding, user.id)
        if forwarding is None:
            forwarding = CallForwarding(user_id=user.id, no_answer_seconds=DEFAULT_NO_ANSWER_SECONDS,
                                        dnd=False)
            session.add(forwarding)
        return tenant, user, forwarding


def _destination(session: Session, tenant: Tenant, user: User, kind: ForwardKind,
                 destination: str | None) -> str | None:
    """A forward's destination as kept (None: off); InvalidValue naming the forward when it is
    the user itself, reaches nothing, or is voicemail without a mailbox."""
    if destination is None:
        return None
    if destination.strip() == VOICEMAIL_DESTINATION:
        if session.get(Mailbox, user.id) is None:
            raise InvalidValue(f"forward of {user.extension} ({kind.value}) to voicemail: {user.extension} "
                               f"has no mailbox (pbx voicemail enable {user.extension} --pin PIN)")
        return VOICEMAIL_DESTINATION
    try:
        number = validate_extension(destination.strip())
    except InvalidValue as exc:
        raise InvalidValue(f"forward of {user.extension} ({kind.value}): {exc}") from None
    if number == user.extension:
        raise InvalidValue(f"forward of {user.extension} ({kind.value}): to itself")
    _check_reachable(session, tenant, number, f"forward of {user.extension} ({kind.value})")
    return number


def _check_reachable(session: Session, tenant: Tenant, number: str, role: str) -> None:
    """InvalidValue naming `role` when `number` is nothing of the tenant's dial plan and no
    outbound route of it takes the number."""
    if number_owner(session, tenant.id, number) is not None:
        return
    patterns = session.scalars(select(OutboundRoute.pattern).where(OutboundRoute.tenant_id == tenant.id))
    if any(compile_pattern(pattern).matches(number) for pattern in patterns):
        return
    raise InvalidValue(f"{role}: {number} reaches nothing in {tenant.domain} (no extension, menu, queue "
                       "or room has it, and no outbound route takes it)")


def _info(row: CallForwarding | None, extension: str, domain: str) -> ForwardingInfo:
    if row is None:
        return ForwardingInfo(extension=extension, tenant_domain=domain)
    return ForwardingInfo(extension=extension, tenant_domain=domain, always=row.always, busy=row.busy,
                          no_answer=row.no_answer, no_answer_seconds=row.no_answer_seconds,
                          unreachable=row.unreachable, dnd=row.dnd)
