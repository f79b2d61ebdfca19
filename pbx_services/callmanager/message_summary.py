"""The message-summary event package (RFC 3842): a phone's message-waiting light.

A user subscribes to its own mailbox only (the Request-URI's user is its extension). The body
says whether messages wait and how many voice messages are new and old:

    Messages-Waiting: yes
    Message-Account: sip:1002@pbx.local
    Voice-Message: 1/0 (0/0)

The voicemail servers change messages in the database (`cluster.voicemail`), where every change
moves the mailbox's `changed_at`; `poll` reads the mailboxes changed in the last
`POLL_WINDOW` seconds once a second. The window is wider than the poll interval, so a clock of
an IVR server a little behind the Call Manager's loses nothing; a state (the new and old
counts) told already is not told again (`Subscriptions` compares states). Polling needs
nothing but the database, which every role has (the all-in-one has no bus across its
processes, and a cluster's Redis stream has no consumer in the Call Manager yet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, bindparam, case, func, select

from ..cluster.models import Mailbox, MessageStatus, Tenant, User, VoicemailMessage

NAME = "message-summary"
CONTENT_TYPE = "application/simple-message-summary"
POLL_WINDOW = 10.0
"""Seconds back a poll looks for changed mailboxes."""

_COUNTED = (
    select(Tenant.domain, User.extension,
           func.coalesce(func.sum(case((VoicemailMessage.status == MessageStatus.NEW, 1), else_=0)), 0),
           func.coalesce(func.sum(case((VoicemailMessage.status == MessageStatus.SAVED, 1), else_=0)), 0))
    .select_from(Mailbox)
    .join(User, User.id == Mailbox.user_id)
    .join(Tenant, Tenant.id == User.tenant_id)
    .outerjoin(VoicemailMessage, VoicemailMessage.user_id == Mailbox.user_id)
    .group_by(Tenant.domain, User.extension)
)
_ONE = _COUNTED.where(and_(Tenant.domain == bindparam("domain"), User.extension == bindparam("extension")))
_CHANGED = _COUNTED.where(Mailbox.changed_at >= bindparam("since"))


def summary_body(account: str, new: int, old: int) -> bytes:
    """The RFC 3842 body for the mailbox `account` (a SIP URI) with `new` and `old` voice messages."""
    return (f"Messages-Waiting: {'yes' if new else 'no'}\r\n"
            f"Message-Account: {account}\r\n"
            f"Voice-Message: {new}/{old} (0/0)\r\n").encode()


class MessageSummaryPackage:
    name = NAME
    content_type = CONTENT_TYPE

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def refusal(self, subscriber: str, realm: str, resource: str) -> tuple[int, str] | None:
        return None if subscriber == resource else (403, "Not Your Mailbox")

    def state(self, realm: str, resource: str, now: float) -> tuple[int, int]:
        """(new, old) voice messages; a user without a mailbox has none."""
        with self._engine.connect() as connection:
            row = connection.execute(_ONE, {"domain": realm, "extension": resource}).first()
        return (int(row[2]), int(row[3])) if row else (0, 0)

    def body(self, realm: str, resource: str, state: tuple[int, int], version: int) -> bytes:
        return summary_body(f"sip:{resource}@{realm}", *state)

    def poll(self, watched: set[tuple[str, str]], now: float) -> list[tuple[str, str, tuple[int, int]]]:
        since = datetime.fromtimestamp(now, UTC) - timedelta(seconds=POLL_WINDOW)
        with self._engine.connect() as connection:
            rows = connection.execute(_CHANGED, {"since": since}).all()
        return [(realm, resource, (int(new), int(old))) for realm, resource, new, old in rows
                if (realm, resource) in watched]
