"""Users' call forwarding and do-not-disturb as the Call Manager applies them.

Read from the system of record (`cluster.forwarding` writes it) and kept `ttl` seconds per
user, so a call costs no database round trip while a change takes effect within `ttl`.

What happens to a call for a user (`B2bua` asks at each step, in this order):
- forward always: the call goes to that destination instead, without ringing the user;
- do-not-disturb: the user is busy: the busy destination if set, else 486 Busy Here;
- no device registered: the unreachable destination if set, else 480;
- every device refused it busy (486, 600, 603): the busy destination;
- every device failed otherwise (408, 480, 5xx...): the unreachable destination;
- nobody answered within the no-answer seconds: the ringing devices are cancelled and the
  call goes to the no-answer destination.
A destination is dialled in the caller's tenant like any number (`voicemail`: the user's own
mailbox, whose number is `vm*EXT`), and may forward again, up to
`MAX_FORWARDS` times (then 482 Loop Detected): a loop of forwards never rings for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select

from ..appserver.cache import ExpiringLru
from ..cluster.models import CallForwarding, Tenant, User
from ..cluster.voicemail import VOICEMAIL_DESTINATION, deposit_number

MAX_FORWARDS = 5
BUSY_CODES = frozenset({486, 600, 603})
"""Final answers that mean the user is busy (or declined): the busy destination."""

_FORWARDING = (
    select(CallForwarding.always, CallForwarding.busy, CallForwarding.no_answer,
           CallForwarding.no_answer_seconds, CallForwarding.unreachable, CallForwarding.dnd)
    .join(User, User.id == CallForwarding.user_id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(Tenant.domain == bindparam("domain"), User.extension == bindparam("extension"))
)


@dataclass(frozen=True, slots=True)
class Forwarding:
    always: str | None
    busy: str | None
    no_answer: str | None
    no_answer_seconds: int
    unreachable: str | None
    dnd: bool

    def on_failure(self, code: int) -> str | None:
        """Where a call every device of the user failed with `code` goes; None: nowhere."""
        return self.busy if code in BUSY_CODES else self.unreachable


class ForwardingTable:
    def __init__(self, engine: Engine, *, ttl: float = 10.0, max_users: int = 200_000) -> None:
        self._engine = engine
        self._cache: ExpiringLru[tuple[str, str], Forwarding | None] = ExpiringLru(ttl=ttl,
                                                                                   max_weight=max_users)

    def of(self, domain: str, extension: str, now: float) -> Forwarding | None:
        """The forwarding of user `extension` of the tenant of `domain`; None: none set (or no
        such user)."""
        key = (domain, extension)
        entry = self._cache.lookup(key, now)
        if entry is not None:
            return entry.value
        with self._engine.connect() as connection:
            row = connection.execute(_FORWARDING, {"domain": domain, "extension": extension}).first()
        found = None
        if row is not None:
            always, busy, no_answer, seconds, unreachable, dnd = row
            found = Forwarding(_number(always, extension), _number(busy, extension),
                               _number(no_answer, extension), seconds, _number(unreachable, extension), dnd)
        if found is not None and not (found.always or found.busy or found.no_answer or found.unreachable
                                      or found.dnd):
            found = None
        return self._cache.store(key, found, now)


def _number(destination: str | None, extension: str) -> str | None:
    """The number a destination of `extension`'s forwarding dials (`voicemail`: its mailbox's)."""
    return deposit_number(extension) if destination == VOICEMAIL_DESTINATION else destination
