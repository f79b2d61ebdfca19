"""SUBSCRIBE/NOTIFY (RFC 6665) with the message-summary package (RFC 3842): a pjsua2 phone's
SUBSCRIBE, our 200 and NOTIFYs byte for byte, refreshes, unsubscribe, expiry, refusals, a
mailbox change told once, and a NOTIFY answered 481 ending the subscription. Sans-IO, the
clock given."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.auth import AuthResult, UserCredentials
from pbx_services.callmanager.message_summary import MessageSummaryPackage, summary_body
from pbx_services.callmanager.subscriptions import MAX_EXPIRES, Subscriptions
from pbx_services.cluster.voicemail import VoicemailService
from pbx_services.runtime.timers import TimerQueue
from pbx_services.sip.events import RequestReceived
from pbx_services.sip.message import SipRequest, SipResponse, parse_message
from pbx_services.sip.stack import SipStack
from pbx_services.sip.transaction import TransactionLayer

from .conftest import DOMAIN

FIXTURE = Path(__file__).parents[2] / "data" / "sip" / "pjsua2_subscribe_message_summary.txt"
PHONE = ("10.0.0.2", 5062)
START = 1000.0


class AcceptEveryone:
    """Digest authentication as the Call Manager's, without the digest: the From user is it."""

    def authenticate(self, request: SipRequest, *, realm: str, source_ip: str, now: float,
                     proxy: bool) -> AuthResult:
        assert not proxy  # the notifier is the UAS: 401, not 407
        user = request.from_.sip_uri.user or ""
        return AuthResult(user=UserCredentials(tenant_id=1, domain=realm, extension=user, ha1_md5="",
                                               ha1_sha256=""))


class Notifier:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        engine = sessions.kw["bind"]
        self.stack = SipStack(host="192.0.2.10", port=5060, max_message_size=65535, layer=TransactionLayer())
        self.timers = TimerQueue()
        tags = itertools.count(1)
        self.subscriptions = Subscriptions(stack=self.stack, timers=self.timers,
                                           authenticator=AcceptEveryone(),  # type: ignore[arg-type]
                                           realm_for=lambda host: DOMAIN,
                                           packages=[MessageSummaryPackage(engine)],
                                           make_tag=lambda: f"cm{next(tags)}")
        self.now = START

    def receive(self, data: bytes) -> None:
        for event in self.stack.receive(data, PHONE, "UDP", self.now):
            if isinstance(event, RequestReceived) and event.transaction is not None:
                if event.request.to.tag is None:
                    self.subscriptions.handle_subscribe(event.request, event.transaction, PHONE, "UDP",
                                                        self.now)
                else:
                    self.subscriptions.handle_in_dialog(event.request, event.transaction, self.now)
            elif event.__class__.__name__ == "ResponseReceived":
                tx = event.transaction  # type: ignore[attr-defined]
                if tx is not None and callable(tx.user_data):
                    tx.user_data(event.response, self.now)  # type: ignore[attr-defined]

    def sent(self) -> list[SipRequest | SipResponse]:
        return [parse_message(transmit.data) for transmit in self.stack.take_transmits()]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.stack.handle_timer(self.now)
        self.timers.run_due(self.now)


@pytest.fixture
def notifier(sessions: sessionmaker[Session]) -> Notifier:
    return Notifier(sessions)


@pytest.fixture
def mailboxes(sessions: sessionmaker[Session]) -> VoicemailService:
    service = VoicemailService(sessions=sessions, default_domain=DOMAIN)
    service.enable("200", pin="4321")
    return service


def subscribe(expires: int | None = 3600) -> bytes:
    data = FIXTURE.read_bytes()
    return data.replace(b"Expires: 3600", f"Expires: {expires}".encode()) if expires is not None \
        else data.replace(b"Expires: 3600\r\n", b"")


def redact(message: SipRequest | SipResponse) -> str:
    text = message.serialize().decode()
    text = re.sub(r"branch=z9hG4bK[\w.-]+", "branch=BRANCH", text)
    return re.sub(r"Server: [^\r]*|User-Agent: [^\r]*", "Server: PBX", text)


def in_dialog(notify: SipRequest, *, expires: int, cseq: int) -> bytes:
    """The phone's refresh in the dialog the NOTIFY names."""
    return (f"SUBSCRIBE sip:200@192.0.2.10:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.2:5062;rport;branch=z9hG4bKPjrefresh{cseq}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:200@pbx.local>;tag={notify.to.tag}\r\n"
            f"To: <sip:200@pbx.local>;tag={notify.from_.tag}\r\nContact: <sip:200@10.0.0.2:5062;ob>\r\n"
            f"Call-ID: {notify.call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nEvent: message-summary\r\n"
            f"Expires: {expires}\r\nContent-Length: 0\r\n\r\n").encode()


def ok(notify: SipRequest, code: int = 200) -> bytes:
    via = notify.headers.get("Via")
    return (f"SIP/2.0 {code} {'OK' if code == 200 else 'Call/Transaction Does Not Exist'}\r\nVia: {via}\r\n"
            f"From: {notify.headers.get('From')}\r\nTo: {notify.headers.get('To')}\r\n"
            f"Call-ID: {notify.call_id}\r\nCSeq: {notify.cseq.seq} NOTIFY\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def test_a_pjsua2_subscribe_is_answered_200_and_notified_at_once(notifier: Notifier,
                                                                mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe())

    response, notify = notifier.sent()
    assert redact(response) == (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 10.0.0.2:5062;rport=5062;branch=BRANCH;received=10.0.0.2\r\n"
        "From: <sip:200@pbx.local>;tag=7e1c9a40-3b2d-4f6e-8a51-c0d9e8f7a6b5\r\n"
        "To: <sip:200@pbx.local>;tag=cm1\r\n"
        "Call-ID: 2b8f4c1d-6e3a-4d9b-a7c2-1f0e9d8c7b6a\r\n"
        "CSeq: 12043 SUBSCRIBE\r\n"
        "Expires: 3600\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Server: PBX\r\n"
        "Content-Length: 0\r\n\r\n")
    assert redact(notify) == (
        "NOTIFY sip:200@10.0.0.2:5062;ob SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=BRANCH;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:200@pbx.local>;tag=cm1\r\n"
        "To: <sip:200@pbx.local>;tag=7e1c9a40-3b2d-4f6e-8a51-c0d9e8f7a6b5\r\n"
        "Call-ID: 2b8f4c1d-6e3a-4d9b-a7c2-1f0e9d8c7b6a\r\n"
        "CSeq: 1 NOTIFY\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Event: message-summary\r\n"
        "Subscription-State: active;expires=3600\r\n"
        "Content-Type: application/simple-message-summary\r\n"
        "Content-Length: 84\r\n\r\n"
        "Messages-Waiting: no\r\n"
        "Message-Account: sip:200@pbx.local\r\n"
        "Voice-Message: 0/0 (0/0)\r\n")
    assert len(notifier.subscriptions) == 1


def test_summary_body_says_new_and_old_messages() -> None:
    assert summary_body("sip:200@pbx.local", 1, 2) == (
        b"Messages-Waiting: yes\r\nMessage-Account: sip:200@pbx.local\r\nVoice-Message: 1/2 (0/0)\r\n")


def test_a_new_message_is_notified_once(notifier: Notifier, mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe())
    _, first = notifier.sent()
    notifier.receive(ok(first))  # type: ignore[arg-type]

    mailboxes.add_message(DOMAIN, "200", caller="100", duration=2.0, path="x.wav",
                          received_at=datetime.fromtimestamp(notifier.now, UTC))
    notifier.subscriptions.poll(notifier.now)  # the clock at 1970: every mailbox changed since
    [notify] = notifier.sent()
    assert isinstance(notify, SipRequest) and notify.cseq.seq == 2
    assert b"Messages-Waiting: yes" in notify.body and b"Voice-Message: 1/0 (0/0)" in notify.body

    notifier.receive(ok(notify))
    notifier.subscriptions.poll(notifier.now)  # the same state: nothing to tell
    assert notifier.sent() == []


def test_a_change_while_a_notify_is_in_flight_waits_for_it(notifier: Notifier,
                                                          mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe())
    _, first = notifier.sent()
    notifier.subscriptions.changed("message-summary", DOMAIN, "200", (3, 0), notifier.now)
    assert notifier.sent() == []

    notifier.receive(ok(first))  # type: ignore[arg-type]
    [notify] = notifier.sent()
    assert b"Voice-Message: 3/0" in notify.body  # type: ignore[union-attr]


def test_refresh_and_unsubscribe(notifier: Notifier, mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe())
    _, first = notifier.sent()
    assert isinstance(first, SipRequest)
    notifier.receive(ok(first))

    notifier.advance(1000)
    notifier.receive(in_dialog(first, expires=7200, cseq=12044))
    response, notify = notifier.sent()
    assert response.status_code == 200 and response.headers.get("Expires") == str(MAX_EXPIRES)  # type: ignore[union-attr]
    assert notify.headers.get("Subscription-State") == "active;expires=3600"
    notifier.receive(ok(notify))  # type: ignore[arg-type]

    notifier.receive(in_dialog(first, expires=0, cseq=12045))
    response, notify = notifier.sent()
    assert response.status_code == 200  # type: ignore[union-attr]
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(notifier.subscriptions) == 0

    notifier.receive(in_dialog(first, expires=3600, cseq=12046))
    [response] = notifier.sent()
    assert response.status_code == 481  # type: ignore[union-attr]


def test_a_subscription_not_refreshed_ends_with_a_timeout(notifier: Notifier,
                                                         mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe(600))
    _, first = notifier.sent()
    notifier.receive(ok(first))  # type: ignore[arg-type]

    notifier.advance(600)

    [notify] = notifier.sent()
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(notifier.subscriptions) == 0


def test_a_notify_answered_481_ends_the_subscription(notifier: Notifier, mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe())
    _, first = notifier.sent()
    notifier.receive(ok(first, 481))  # type: ignore[arg-type]
    assert len(notifier.subscriptions) == 0


def test_a_fetch_is_notified_once_and_over(notifier: Notifier, mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe(0))
    response, notify = notifier.sent()
    assert response.status_code == 200  # type: ignore[union-attr]
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(notifier.subscriptions) == 0


@pytest.mark.parametrize(("change", "status", "header"), [
    ((b"Event: message-summary", b"Event: presence"), 489, ("Allow-Events", "message-summary")),
    ((b"Expires: 3600", b"Expires: 10"), 423, ("Min-Expires", "60")),
    ((b"SUBSCRIBE sip:200@", b"SUBSCRIBE sip:100@"), 403, None),
])
def test_refusals(notifier: Notifier, change: tuple[bytes, bytes], status: int,
                  header: tuple[str, str] | None) -> None:
    notifier.receive(FIXTURE.read_bytes().replace(*change))

    [response] = notifier.sent()
    assert response.status_code == status  # type: ignore[union-attr]
    if header is not None:
        assert response.headers.get(header[0]) == header[1]
    assert len(notifier.subscriptions) == 0


def test_no_expires_is_the_default_hour(notifier: Notifier, mailboxes: VoicemailService) -> None:
    notifier.receive(subscribe(None))
    response, _ = notifier.sent()
    assert response.headers.get("Expires") == "3600"


class Versioned:
    """A package whose body names the subscription's version, as the dialog package's does."""

    name = "dialog"
    content_type = "text/plain"

    def refusal(self, subscriber: str, realm: str, resource: str) -> tuple[int, str] | None:
        return None

    def state(self, realm: str, resource: str, now: float) -> str:
        return "idle"

    def body(self, realm: str, resource: str, state: str, version: int) -> bytes:
        return f"{resource} {state} version {version}".encode()


def test_a_package_numbers_its_notifies_per_subscription(notifier: Notifier) -> None:
    notifier.subscriptions.packages["dialog"] = Versioned()
    notifier.receive(FIXTURE.read_bytes().replace(b"Event: message-summary", b"Event: dialog"))
    _, first = notifier.sent()
    assert first.body == b"200 idle version 0"
    notifier.receive(ok(first))  # type: ignore[arg-type]

    notifier.subscriptions.changed("dialog", DOMAIN, "200", "ringing", notifier.now)
    notifier.subscriptions.changed("dialog", DOMAIN, "200", "ringing", notifier.now)
    [second] = notifier.sent()
    assert second.body == b"200 ringing version 1"
    assert notifier.subscriptions.watched("dialog") == {(DOMAIN, "200")}


def test_the_call_manager_challenges_a_subscribe_then_notifies(make_pbx: Any,
                                                              sessions: sessionmaker[Session]) -> None:
    """Through the Call Manager's dispatch: a SUBSCRIBE is challenged (401, as a registrar's),
    answered with credentials, and a SUBSCRIBE in its dialog goes to the notifier too."""
    VoicemailService(sessions=sessions, default_domain=DOMAIN).enable("200", pin="4321")
    pbx = make_pbx()
    pbx.core.subscriptions.packages["message-summary"] = MessageSummaryPackage(sessions.kw["bind"])
    bob = pbx.phone("200", "10.0.0.2", 5062)

    def subscribe(authorization: str | None, cseq: int) -> bytes:
        lines = ["SUBSCRIBE sip:200@pbx.local SIP/2.0", bob.via(), "Max-Forwards: 70",
                 "From: <sip:200@pbx.local>;tag=bob-mwi", "To: <sip:200@pbx.local>",
                 "Call-ID: mwi-1@10.0.0.2",
                 f"CSeq: {cseq} SUBSCRIBE", "Contact: <sip:200@10.0.0.2:5062>", "Event: message-summary",
                 "Expires: 600", *([f"Authorization: {authorization}"] if authorization else []),
                 "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    bob.send(subscribe(None, 1))
    challenge = bob.pop_response(401)
    bob.send(subscribe(bob.credentials(challenge, "SUBSCRIBE", "sip:200@pbx.local"), 2))
    assert bob.pop_response(200).headers.get("Expires") == "600"
    notify = bob.pop_request("NOTIFY")
    assert notify.body.startswith(b"Messages-Waiting: no\r\n")
    bob.send(ok(notify))

    bob.send(in_dialog(notify, expires=0, cseq=3))
    assert bob.pop_response(200).status_code == 200
    assert bob.pop_request("NOTIFY").headers.get("Subscription-State") == "terminated;reason=timeout"
    assert len(pbx.core.subscriptions) == 0
