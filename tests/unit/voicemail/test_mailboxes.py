"""Mailboxes in the system of record (`cluster.voicemail`), the forward to `voicemail`, and how
the Call Manager routes voicemail's numbers (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.directory import Directory
from pbx_services.callmanager.forwarding import ForwardingTable
from pbx_services.cluster.dao import NotFound
from pbx_services.cluster.forwarding import ForwardingService, ForwardKind
from pbx_services.cluster.models import MessageStatus, ServerRole
from pbx_services.cluster.validation import InvalidValue
from pbx_services.cluster.voicemail import (
    VoicemailService,
    deposit_number,
    hash_pin,
    is_voicemail_number,
    mailbox_of,
    pin_matches,
)

from .conftest import DOMAIN, PIN


def test_the_pin_is_kept_as_an_scrypt_hash_only() -> None:
    stored = hash_pin("4321", salt=bytes(16))
    assert stored.startswith("scrypt$16384$8$1$" + "00" * 16 + "$") and "4321" not in stored
    assert pin_matches("4321", stored)
    assert not pin_matches("1234", stored)
    assert not pin_matches("4321", "md5$whatever")
    assert not pin_matches("4321", "scrypt$x$8$1$00$00")


def test_voicemail_numbers() -> None:
    assert deposit_number("1002") == "vm*1002"
    assert mailbox_of("vm*1002") == "1002"
    assert mailbox_of("vm*") is None and mailbox_of("1002") is None
    assert is_voicemail_number("*97") and is_voicemail_number("vm*1002")
    assert not is_voicemail_number("800")


def test_enable_takes_the_users_email_and_checks_its_values(sessions: sessionmaker[Session]) -> None:
    service = VoicemailService(sessions=sessions, default_domain=DOMAIN)
    with pytest.raises(InvalidValue, match="a new mailbox needs a PIN"):
        service.enable("1002", pin=None)
    with pytest.raises(InvalidValue, match="PIN: 4 to 16 digits"):
        service.enable("1002", pin="12a4")
    with pytest.raises(InvalidValue, match="max seconds 2 is out of range: 5 to 3600 s"):
        service.enable("1002", pin="1234", max_seconds=2)
    with pytest.raises(NotFound):
        service.enable("1009", pin="1234")

    mailbox = service.enable("1002", pin="1234", max_messages=5)
    assert (mailbox.email, mailbox.max_messages, mailbox.max_seconds) == ("bob@example.com", 5, 180)
    assert service.enable("1002", pin=None, email="").email is None
    assert service.pin_matches(DOMAIN, "1002", "1234")
    assert [m.extension for m in service.list_mailboxes()] == ["1002"]


def test_messages_new_first_saved_and_deleted(mailboxes: VoicemailService) -> None:
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    first = mailboxes.add_message(DOMAIN, "1002", caller="1001", duration=3.0, path="a.wav", received_at=at)
    second = mailboxes.add_message(DOMAIN, "1002", caller="1003", duration=4.0, path="b.wav", received_at=at)
    assert first is not None and second is not None
    mailboxes.set_status(DOMAIN, "1002", first.id, MessageStatus.SAVED)

    assert [(m.caller, m.status) for m in mailboxes.messages("1002")] == [
        ("1003", MessageStatus.NEW), ("1001", MessageStatus.SAVED)]
    mailbox = mailboxes.mailbox(DOMAIN, "1002")
    assert mailbox is not None and (mailbox.new, mailbox.saved) == (1, 1)

    assert mailboxes.delete_message(DOMAIN, "1002", second.id) == "b.wav"
    assert mailboxes.delete_message(DOMAIN, "1001", first.id) is None  # not 1001's message
    assert mailboxes.add_message(DOMAIN, "1001", caller="x", duration=1.0, path="c.wav",
                                 received_at=at) is None
    assert mailboxes.disable("1002") == ["a.wav"]
    assert mailboxes.mailbox(DOMAIN, "1002") is None


def test_a_forward_to_voicemail_needs_a_mailbox_and_dials_it(sessions: sessionmaker[Session]) -> None:
    forwards = ForwardingService(sessions=sessions, default_domain=DOMAIN)
    with pytest.raises(InvalidValue, match=r"1002 \(no_answer\) to voicemail: 1002 has no mailbox"):
        forwards.forward("1002", ForwardKind.NO_ANSWER, "voicemail")
    VoicemailService(sessions=sessions, default_domain=DOMAIN).enable("1002", pin=PIN)

    assert forwards.forward("1002", ForwardKind.NO_ANSWER, "voicemail", seconds=5).no_answer == "voicemail"

    table = ForwardingTable(sessions.kw["bind"], ttl=0.0)
    forwarding = table.of(DOMAIN, "1002", 0.0)
    assert forwarding is not None and (forwarding.no_answer, forwarding.no_answer_seconds) == ("vm*1002", 5)


def test_the_call_manager_routes_voicemail_numbers_to_ivr_servers(mailboxes: VoicemailService,
                                                                  sessions: sessionmaker[Session]) -> None:
    directory = Directory(engine=sessions.kw["bind"], default_domain=DOMAIN)
    directory.tick(0.0)

    voicemail_menu = directory.feature(DOMAIN, "*97")  # a feature code (cluster.feature_codes)
    assert voicemail_menu is not None and voicemail_menu.feature.role is ServerRole.IVR
    assert voicemail_menu.service_number == "*97"
    assert directory.service_role(DOMAIN, "vm*1002") is ServerRole.IVR
    assert directory.service_role(DOMAIN, "vm*1001") is None  # no mailbox
