"""The e-mail of an alert notification (`alerts.Notification`), and sending it through the `smtp`
section's server: plain, STARTTLS or implicit TLS, with or without login.

Composing is pure (the subject and the plain-text body name each server, its role, its state
and since when). Sending is blocking (smtplib): the portal's alert runner calls it on a thread
of its own, and retries a failed sending after `retry_after(attempts)` seconds.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .alerts import Alert, Notification
from .config import SmtpConfig

SUBJECT_SERVERS = 4
"""Servers named in a subject; more are counted ("and 3 more")."""
TRUNK_ROLE = "trunk"
"""The role of the Call Managers' events about trunks' registrations (`callmanager/controller.py`)."""
RETRY_DELAYS = (10.0, 60.0, 300.0, 900.0)
"""Seconds before sending again after the 1st, 2nd... failure; after the last one it is given up."""


def retry_after(attempts: int) -> float | None:
    """Seconds to wait before the next try after `attempts` failed ones; None: give up."""
    return RETRY_DELAYS[attempts - 1] if 1 <= attempts <= len(RETRY_DELAYS) else None


def alert_subject(notification: Notification) -> str:
    """`[FIRING:2] ivr servers down: ivr1, ivr2`, `[RESOLVED] ivr server back up: ivr1`..."""
    role, back = notification.group, notification.resolved
    if not notification.firing:
        return f"[RESOLVED] {_servers_of(role, back)} back up: {_names(back)}"
    still = "still " if notification.repeated else ""
    subject = (f"[FIRING:{len(notification.firing)}] {_servers_of(role, notification.firing)} {still}down: "
               f"{_names(notification.firing)}")
    if back:
        subject += f"; back up: {_names(back)}"
    return subject


def alert_body(notification: Notification, *, now: datetime, sent_by: str) -> str:
    """The plain-text body: a line per server down, then per server back, at `now`."""
    role = notification.group
    lines = []
    if notification.firing:
        count = len(notification.firing)
        verb = "is" if count == 1 else "are"
        again = ", as the last e-mail said" if notification.repeated else ""
        lines += [f"{count} {_servers_of(role, notification.firing)} {verb} down{again}.", ""]
        for alert in notification.firing:
            lines.append(f"  DOWN  {alert.server} ({alert.role}): {alert.state.value} since "
                         f"{_when(alert.since)}, for {_duration(now - alert.since)}"
                         + (f"; {alert.reason}" if alert.reason else ""))
        lines.append("")
    if notification.resolved:
        count = len(notification.resolved)
        verb = "is" if count == 1 else "are"
        lines += [f"{count} {_servers_of(role, notification.resolved)} {verb} back up.", ""]
        for alert in notification.resolved:
            assert alert.resolved_at is not None
            lines.append(f"  UP    {alert.server} ({alert.role}): up since {_when(alert.resolved_at)}, "
                         f"after {_duration(alert.resolved_at - alert.since)} {alert.state.value} "
                         f"(from {_when(alert.since)})")
        lines.append("")
    if notification.firing and role != TRUNK_ROLE:
        lines += ["A server that is down gets no new calls. Disable it in the portal's cluster page",
                  "until it is repaired, so that it gets none when it comes back either.", ""]
    lines += ["-- ", f"Sent by the PBX portal on {sent_by}; every alert is in the portal's alert history."]
    return "\n".join(lines) + "\n"


def alert_email(*, subject: str, body: str, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    return message


def send(config: SmtpConfig, message: EmailMessage, *, context: ssl.SSLContext | None = None) -> None:
    """Send `message` through the configured server (`smtp.host` must be set); smtplib's errors
    (SMTPException) and OSError's (refused, timed out, TLS failed) are raised. `context`: the TLS
    settings, the system's trusted authorities and host name checking unless given."""
    if config.host is None:
        raise ValueError("smtp.host is not set: no mail server to send through")
    context = context or ssl.create_default_context()
    client = (smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
              if config.tls else smtplib.SMTP(config.host, config.port, timeout=config.timeout))
    with client:
        if config.starttls:
            client.starttls(context=context)
        if config.username is not None and config.password is not None:
            client.login(config.username, config.password.get_secret_value())
        client.send_message(message)


def _servers_of(role: str, alerts: Sequence[Alert]) -> str:
    noun = "trunk" if role == TRUNK_ROLE else f"{role} server"  # a trunk is the provider's, not ours
    return noun if len(alerts) == 1 else f"{noun}s"


def _names(alerts: Sequence[Alert]) -> str:
    names = ", ".join(alert.server for alert in alerts[:SUBJECT_SERVERS])
    more = len(alerts) - SUBJECT_SERVERS
    return f"{names} and {more} more" if more > 0 else names


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(span: timedelta) -> str:
    seconds = max(0, round(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"
