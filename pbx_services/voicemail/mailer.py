"""Voicemail to email: a new message sent to the mailbox's address, its WAV attached.

Blocking (smtplib): called in an executor thread, never on a worker's event loop.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from ..cluster.config import SmtpConfig


def voicemail_email(*, sender: str, to: str, extension: str, domain: str, caller: str, duration: float,
                    received: str, wav: Path) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"New voicemail for {extension} from {caller or 'an unknown caller'}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(f"{caller or 'An unknown caller'} left a message of {duration:.0f} s for "
                        f"{extension}@{domain} at {received}.\n\nDial *97 to hear it on your phone; "
                        "the recording is attached.\n")
    message.add_attachment(wav.read_bytes(), maintype="audio", subtype="wav", filename=wav.name)
    return message


def send(config: SmtpConfig, message: EmailMessage) -> None:
    """Send `message` through the configured server; smtplib's and OSError's errors are raised."""
    assert config.host is not None
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as client:
        if config.starttls:
            client.starttls(context=ssl.create_default_context())
        if config.username is not None and config.password is not None:
            client.login(config.username, config.password.get_secret_value())
        client.send_message(message)
