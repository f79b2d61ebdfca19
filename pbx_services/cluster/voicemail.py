"""Users' voicemail in the system of record: mailboxes, their PINs, and the messages left.

A user's mailbox takes the calls forwarded to `voicemail` (`pbx user forward EXT --no-answer
voicemail`): the Call Manager turns that destination into the deposit number `vm*EXT`, which
the IVR servers answer (`pbx_services.voicemail`), like the voicemail menu `*97` every user
dials to hear its own messages after its PIN. The PIN is kept as an scrypt hash only. A
message is a WAV under the IVR servers' voicemail directory and a row here; every change of a
mailbox's messages moves its `changed_at`, which the Call Managers poll to tell subscribed
phones (message-waiting indication, `callmanager.message_summary`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import NotFound, UserDao
from pbx_services.cluster.models import CallForwarding, Mailbox, MessageStatus, Tenant, User, VoicemailMessage
from pbx_services.cluster.models.voicemail import DEFAULT_MAX_MESSAGES, DEFAULT_MAX_SECONDS
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range

VOICEMAIL_DESTINATION = "voicemail"
"""The forward destination meaning the forwarding user's own mailbox."""
VOICEMAIL_MENU = "*97"
"""What a user dials to hear its messages."""
DEPOSIT_PREFIX = "vm*"
"""The number of user EXT's mailbox is `vm*EXT` (no extension has a `*`)."""
MAX_MESSAGES = range(1, 10_001)
MAX_SECONDS = range(5, 3601)
_PIN_RE = re.compile(r"[0-9]{4,16}")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def deposit_number(extension: str) -> str:
    """The number a call dials to leave a message for `extension`."""
    return DEPOSIT_PREFIX + extension


def mailbox_of(number: str) -> str | None:
    """The extension whose mailbox the deposit number `number` is; None if it is none."""
    return number[len(DEPOSIT_PREFIX):] or None if number.startswith(DEPOSIT_PREFIX) else None


def is_voicemail_number(number: str) -> bool:
    """Whether the voicemail application answers `number` (the menu, or a deposit number)."""
    return number == VOICEMAIL_MENU or mailbox_of(number) is not None


def validate_pin(pin: str) -> str:
    if not _PIN_RE.fullmatch(pin):
        raise InvalidValue("PIN: 4 to 16 digits")
    return pin


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$SALT$HASH` (hex) of the PIN."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` is the one `stored` (a `hash_pin`) was made of; False for a malformed hash."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    tenant_domain: str
    extension: str
    email: str | None
    greeting_prompt: str | None
    max_messages: int
    max_seconds: int
    new: int = 0
    saved: int = 0


@dataclass(frozen=True, slots=True)
class MessageInfo:
    id: int
    caller: str
    received_at: datetime
    duration: float
    path: str
    status: MessageStatus


_COUNTS = (func.coalesce(func.sum(case((VoicemailMessage.status == MessageStatus.NEW, 1), else_=0)), 0),
           func.coalesce(func.sum(case((VoicemailMessage.status == MessageStatus.SAVED, 1), else_=0)), 0))


class VoicemailService:
    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    # -- administration ---------------------------------------------------------------------

    def enable(self, extension: str, *, pin: str | None, email: str | None = None,
               greeting_prompt: str | None = None, max_messages: int | None = None,
               max_seconds: int | None = None, tenant_domain: str | None = None) -> MailboxInfo:
        """Give `extension` a mailbox, or change its settings (what is None stays; a new mailbox
        needs a PIN, and its email is the user's unless given)."""
        if pin is not None:
            validate_pin(pin)
        if max_messages is not None:
            check_range("max messages", max_messages, MAX_MESSAGES)
        if max_seconds is not None:
            check_range("max seconds", max_seconds, MAX_SECONDS, "s")
        with self._sessions.begin() as session:
            tenant, user = self._user(session, extension, tenant_domain)
            mailbox = session.get(Mailbox, user.id)
            if mailbox is None:
                if pin is None:
                    raise InvalidValue(f"voicemail of {extension}: a new mailbox needs a PIN (--pin)")
                mailbox = Mailbox(user_id=user.id, pin_hash="", email=email or user.email,
                                  max_messages=DEFAULT_MAX_MESSAGES, max_seconds=DEFAULT_MAX_SECONDS,
                                  changed_at=datetime.now(UTC))
                session.add(mailbox)
            if pin is not None:
                mailbox.pin_hash = hash_pin(pin)
            if email is not None:
                mailbox.email = email or None
            if greeting_prompt is not None:
                mailbox.greeting_prompt = greeting_prompt or None
            if max_messages is not None:
                mailbox.max_messages = max_messages
            if max_seconds is not None:
                mailbox.max_seconds = max_seconds
            session.flush()
            return self._info(session, mailbox, tenant, user)

    def disable(self, extension: str, *, tenant_domain: str | None = None) -> list[str]:
        """Remove `extension`'s mailbox, its messages and its forwards to voicemail; the paths of
        the messages' WAVs (to delete)."""
        with self._sessions.begin() as session:
            _, user = self._user(session, extension, tenant_domain)
            mailbox = session.get(Mailbox, user.id)
            if mailbox is None:
                raise NotFound("Mailbox", {"extension": extension})
            paths = list(session.scalars(select(VoicemailMessage.path).where(
                VoicemailMessage.user_id == user.id)))
            session.execute(delete(VoicemailMessage).where(VoicemailMessage.user_id == user.id))
            session.delete(mailbox)
            forwarding = session.get(CallForwarding, user.id)
            for kind in ("always", "busy", "no_answer", "unreachable"):
                if forwarding is not None and getattr(forwarding, kind) == VOICEMAIL_DESTINATION:
                    setattr(forwarding, kind, None)
            return paths

    def list_mailboxes(self, *, tenant_domain: str | None = None) -> list[MailboxInfo]:
        with self._sessions() as session:
            query = (select(Mailbox, Tenant, User).join(User, User.id == Mailbox.user_id)
                     .join(Tenant, Tenant.id == User.tenant_id).order_by(Tenant.domain, User.extension))
            if tenant_domain is not None:
                query = query.where(Tenant.id == tenant_by_domain(
                    session, tenant_domain, default_domain=self._default_domain).id)
            return [self._info(session, mailbox, tenant, user)
                    for mailbox, tenant, user in session.execute(query)]

    def messages(self, extension: str, *, tenant_domain: str | None = None) -> list[MessageInfo]:
        """The mailbox's messages, new ones first, oldest first within each."""
        with self._sessions() as session:
            _, user = self._user(session, extension, tenant_domain)
            return self._messages(session, user.id)

    # -- what the voicemail application does ---------------------------------------------------

    def mailbox(self, domain: str, extension: str) -> MailboxInfo | None:
        with self._sessions() as session:
            found = self._find(session, domain, extension)
            return None if found is None else self._info(session, *found)

    def pin_matches(self, domain: str, extension: str, pin: str) -> bool:
        with self._sessions() as session:
            found = self._find(session, domain, extension)
            return found is not None and pin_matches(pin, found[0].pin_hash)

    def mailbox_messages(self, domain: str, extension: str) -> list[MessageInfo]:
        with self._sessions() as session:
            found = self._find(session, domain, extension)
            return [] if found is None else self._messages(session, found[0].user_id)

    def add_message(self, domain: str, extension: str, *, caller: str, duration: float, path: str,
                    received_at: datetime) -> MessageInfo | None:
        """Store a message left for `extension`; None when it has no mailbox any more."""
        with self._sessions.begin() as session:
            found = self._find(session, domain, extension)
            if found is None:
                return None
            mailbox = found[0]
            message = VoicemailMessage(user_id=mailbox.user_id, caller=caller[:64], duration=duration,
                                       path=path, received_at=received_at, status=MessageStatus.NEW)
            session.add(message)
            mailbox.changed_at = datetime.now(UTC)
            session.flush()
            return _message_info(message)

    def set_status(self, domain: str, extension: str, message_id: int, status: MessageStatus) -> None:
        with self._sessions.begin() as session:
            message = self._message(session, domain, extension, message_id)
            if message is not None and message.status is not status:
                message.status = status
                self._touch(session, message.user_id)

    def delete_message(self, domain: str, extension: str, message_id: int) -> str | None:
        """Remove a message; the path of its WAV (to delete), None if it was gone."""
        with self._sessions.begin() as session:
            message = self._message(session, domain, extension, message_id)
            if message is None:
                return None
            session.delete(message)
            self._touch(session, message.user_id)
            return message.path

    # -- helpers ------------------------------------------------------------------------------

    def _user(self, session: Session, extension: str, tenant_domain: str | None) -> tuple[Tenant, User]:
        tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
        return tenant, UserDao(session=session).get_by(tenant_id=tenant.id, extension=extension)

    @staticmethod
    def _find(session: Session, domain: str, extension: str) -> tuple[Mailbox, Tenant, User] | None:
        row = session.execute(
            select(Mailbox, Tenant, User).join(User, User.id == Mailbox.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.domain == domain, User.extension == extension)).first()
        return None if row is None else (row[0], row[1], row[2])

    def _message(self, session: Session, domain: str, extension: str,
                 message_id: int) -> VoicemailMessage | None:
        found = self._find(session, domain, extension)
        message = session.get(VoicemailMessage, message_id)
        if found is None or message is None or message.user_id != found[0].user_id:
            return None
        return message

    @staticmethod
    def _touch(session: Session, user_id: int) -> None:
        mailbox = session.get(Mailbox, user_id)
        if mailbox is not None:
            mailbox.changed_at = datetime.now(UTC)

    @staticmethod
    def _messages(session: Session, user_id: int) -> list[MessageInfo]:
        rows = session.scalars(select(VoicemailMessage).where(VoicemailMessage.user_id == user_id)
                               .order_by(VoicemailMessage.status, VoicemailMessage.received_at,
                                         VoicemailMessage.id))
        return [_message_info(row) for row in rows]

    @staticmethod
    def _info(session: Session, mailbox: Mailbox, tenant: Tenant, user: User) -> MailboxInfo:
        counts = select(*_COUNTS).where(VoicemailMessage.user_id == mailbox.user_id)
        new, saved = session.execute(counts).one()
        return MailboxInfo(tenant_domain=tenant.domain, extension=user.extension, email=mailbox.email,
                           greeting_prompt=mailbox.greeting_prompt, max_messages=mailbox.max_messages,
                           max_seconds=mailbox.max_seconds, new=int(new), saved=int(saved))


def _message_info(row: VoicemailMessage) -> MessageInfo:
    return MessageInfo(id=row.id, caller=row.caller, received_at=row.received_at, duration=row.duration,
                       path=row.path, status=row.status)
