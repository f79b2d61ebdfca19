"""Alert e-mails (`cluster/alert_mail.py`): what they say, and their sending to a real SMTP server
(aiosmtpd on loopback) in plain text, with STARTTLS and login, and over implicit TLS."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from pbx_services.cluster.alert_mail import alert_body, alert_email, alert_subject, retry_after, send
from pbx_services.cluster.alerts import Alert, Notification
from pbx_services.cluster.config import SmtpConfig
from pbx_services.cluster.events import ServerState
from tests.smtp_server import Inbox, SmtpServer, free_port

DOWN_AT = datetime(2026, 12, 3, 13, 40, 2, tzinfo=UTC)
Certificate = tuple[Path, Path]
"""A PEM certificate and its key."""


def alert(server: str, *, role: str = "ivr", back_after: float | None = None, reason: str = "") -> Alert:
    resolved_at = None if back_after is None else DOWN_AT + timedelta(seconds=back_after)
    return Alert(role=role, server=server, state=ServerState.DOWN, reason=reason, since=DOWN_AT,
                 resolved_at=resolved_at)


def notification(firing: tuple[Alert, ...] = (), resolved: tuple[Alert, ...] = (), *, group: str = "ivr",
                 repeated: bool = False) -> Notification:
    return Notification(group=group, firing=firing, resolved=resolved, repeated=repeated)


def test_the_subject_of_one_server_down() -> None:
    assert alert_subject(notification((alert("ivr1"),))) == "[FIRING:1] ivr server down: ivr1"


def test_the_subject_of_several_names_the_first_four() -> None:
    firing = tuple(alert(f"ivr{i}") for i in range(1, 7))
    assert alert_subject(notification(firing)) == (
        "[FIRING:6] ivr servers down: ivr1, ivr2, ivr3, ivr4 and 2 more")


def test_the_subject_of_a_reminder_and_of_a_change() -> None:
    reminder = notification((alert("ivr1"),), repeated=True)
    assert alert_subject(reminder) == "[FIRING:1] ivr server still down: ivr1"
    assert alert_subject(notification((alert("ivr2"),), (alert("ivr1", back_after=60),))) == (
        "[FIRING:1] ivr server down: ivr2; back up: ivr1")


def test_the_subject_of_a_resolved_notification() -> None:
    back = (alert("ivr1", back_after=5), alert("ivr2", back_after=9))
    assert alert_subject(notification(resolved=back)) == "[RESOLVED] ivr servers back up: ivr1, ivr2"


def test_the_body_names_each_server_its_role_state_and_since_when() -> None:
    body = alert_body(notification((alert("ivr2", reason="2 OPTIONS unanswered"),),
                                   (alert("ivr1", back_after=754),)),
                      now=DOWN_AT + timedelta(seconds=125), sent_by="cm1")
    assert body.splitlines()[:8] == [
        "1 ivr server is down.",
        "",
        "  DOWN  ivr2 (ivr): down since 2026-12-03 13:40:02 UTC, for 2 min 05 s; 2 OPTIONS unanswered",
        "",
        "1 ivr server is back up.",
        "",
        "  UP    ivr1 (ivr): up since 2026-12-03 13:52:36 UTC, after 12 min 34 s down (from 2026-12-03 "
        "13:40:02 UTC)",
        "",
    ]
    assert "Disable it in the portal" in body and body.endswith("Sent by the PBX portal on cm1; every alert "
                                                                 "is in the portal's alert history.\n")


def test_the_body_of_a_resolved_trunk_gives_no_advice_to_disable() -> None:
    body = alert_body(notification(resolved=(alert("trunk carrier", role="trunk", back_after=7300),),
                                   group="trunk"), now=DOWN_AT, sent_by="cm1")
    assert body.startswith("1 trunk is back up.\n\n  UP    trunk carrier (trunk): up since "
                           "2026-12-03 15:41:42 UTC, after 2 h 01 min down")
    assert "Disable" not in body
    down = notification((alert("trunk carrier", role="trunk"),), group="trunk")
    assert alert_subject(down) == "[FIRING:1] trunk down: trunk carrier"
    assert "Disable" not in alert_body(down, now=DOWN_AT, sent_by="cm1")


def test_the_email_goes_from_the_configured_address_to_every_recipient() -> None:
    message = alert_email(subject="s", body="b\n", sender="pbx@example.com",
                          recipients=["ops@example.com", "noc@example.com"])
    assert (message["From"], message["To"], message["Subject"]) == (
        "pbx@example.com", "ops@example.com, noc@example.com", "s")
    assert message["Message-ID"].endswith("@example.com>") and message.get_content() == "b\n"


def test_failed_sendings_are_retried_later_and_later_then_given_up() -> None:
    delays = [retry_after(attempts) for attempts in range(1, 7)]
    assert delays[:4] == sorted(delays[:4]) and all(d is not None and d > 0 for d in delays[:4])
    assert delays[4:] == [None, None]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"pbx", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, certificate: Certificate) -> Iterator[tuple[Inbox, int]]:
    """aiosmtpd: plain; `starttls` (requires STARTTLS, then login); `tls` (implicit TLS)."""
    kind = getattr(request, "param", "plain")
    options: dict[str, Any] = {}
    if kind == "starttls":
        options = {"tls_context": _server_context(certificate), "require_starttls": True,
                   "auth_required": True, "authenticator": _authenticator}
    elif kind == "tls":
        options = {"ssl_context": _server_context(certificate)}
    server = SmtpServer(**options)
    try:
        yield server.inbox, server.port
    finally:
        server.stop()


def _client_context(certificate: Certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def _message() -> EmailMessage:
    return alert_email(subject="[FIRING:1] ivr server down: ivr1", body="1 ivr server is down.\n",
                       sender="pbx@example.com", recipients=["ops@example.com", "noc@example.com"])


def test_sent_in_plain_text(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    send(SmtpConfig(host="127.0.0.1", port=port), _message())
    [(recipients, received)] = inbox.messages
    assert recipients == ["ops@example.com", "noc@example.com"]
    assert received["Subject"] == "[FIRING:1] ivr server down: ivr1"
    assert received.get_content().splitlines() == ["1 ivr server is down."]


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_sent_after_starttls_and_login(smtp_server: tuple[Inbox, int], certificate: Certificate) -> None:
    inbox, port = smtp_server
    config = SmtpConfig.model_validate({"host": "127.0.0.1", "port": port, "starttls": True,
                                        "username": "pbx", "password": "s3cret"})
    send(config, _message(), context=_client_context(certificate))
    assert len(inbox.messages) == 1


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_a_wrong_password_raises(smtp_server: tuple[Inbox, int], certificate: Certificate) -> None:
    inbox, port = smtp_server
    config = SmtpConfig.model_validate({"host": "127.0.0.1", "port": port, "starttls": True,
                                        "username": "pbx", "password": "wrong"})
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(config, _message(), context=_client_context(certificate))
    assert inbox.messages == []


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
def test_a_server_requiring_starttls_refuses_plain_text(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    with pytest.raises(smtplib.SMTPException):
        send(SmtpConfig(host="127.0.0.1", port=port), _message())
    assert inbox.messages == []


@pytest.mark.parametrize("smtp_server", ["tls"], indirect=True)
def test_sent_over_implicit_tls(smtp_server: tuple[Inbox, int], certificate: Certificate) -> None:
    inbox, port = smtp_server
    send(SmtpConfig(host="127.0.0.1", port=port, tls=True), _message(), context=_client_context(certificate))
    assert len(inbox.messages) == 1


@pytest.mark.parametrize("smtp_server", ["tls"], indirect=True)
def test_a_certificate_nobody_vouches_for_is_refused(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    with pytest.raises(ssl.SSLCertVerificationError):
        send(SmtpConfig(host="127.0.0.1", port=port, tls=True), _message())
    assert inbox.messages == []


def test_no_server_listening_raises_oserror() -> None:
    with pytest.raises(OSError):
        send(SmtpConfig(host="127.0.0.1", port=free_port(), timeout=2), _message())


def test_without_a_host_nothing_is_tried() -> None:
    with pytest.raises(ValueError, match="smtp.host is not set"):
        send(SmtpConfig(), _message())
