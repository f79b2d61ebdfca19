"""A recorded message kept (row + WAV), emailed with its WAV attached, or dropped as silence."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import pytest

from pbx_services.cluster.config import SmtpConfig
from pbx_services.cluster.voicemail import VoicemailService
from pbx_services.rtp.wav import write_wav
from pbx_services.voicemail.delivery import Delivery, Deposit, sound_seconds

from .conftest import DOMAIN

RECEIVED = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def tone(seconds: float, frequency: float = 700.0, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * frequency * t) * level).astype(np.int16)


def deposit(tmp_path: Path, samples: np.ndarray) -> Deposit:
    path = tmp_path / "pbx.local" / "1002" / "m.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, 8000, samples)
    return Deposit(domain=DOMAIN, extension="1002", caller="1001", path=path,
                   relative_path="pbx.local/1002/m.wav", received_at=RECEIVED)


class Outbox:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[SmtpConfig, EmailMessage]] = []
        self.error = error

    def send(self, config: SmtpConfig, message: EmailMessage) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((config, message))


def test_sound_seconds_counts_loud_frames_only() -> None:
    samples = np.concatenate([np.zeros(8000, np.int16), tone(0.5), (np.random.default_rng(1).normal(
        0, 30, 8000)).astype(np.int16)])
    assert sound_seconds(samples) == pytest.approx(0.5)


def test_a_message_is_kept_and_emailed_with_its_wav(tmp_path: Path, mailboxes: VoicemailService) -> None:
    outbox = Outbox()
    counters: dict[str, int] = {}
    delivery = Delivery(mailboxes=mailboxes, smtp=SmtpConfig(host="127.0.0.1", port=2525,
                                                               from_address="pbx@pbx.local"),
                        counters=counters, send=outbox.send)
    made = deposit(tmp_path, tone(2.0))

    delivery.deliver(made)

    [message] = mailboxes.messages("1002")
    assert (message.caller, message.duration, message.path) == ("1001", 2.0, "pbx.local/1002/m.wav")
    [(config, email)] = outbox.sent
    assert (config.host, email["To"], email["From"]) == ("127.0.0.1", "bob@example.com", "pbx@pbx.local")
    assert email["Subject"] == "New voicemail for 1002 from 1001"
    [attachment] = list(email.iter_attachments())
    assert attachment.get_content_type() == "audio/wav" and attachment.get_filename() == "m.wav"
    assert attachment.get_content() == made.path.read_bytes()
    assert counters["voicemail_messages_left"] == 1 and counters["voicemail_emails_sent"] == 1


def test_silence_is_dropped(tmp_path: Path, mailboxes: VoicemailService) -> None:
    counters: dict[str, int] = {}
    outbox = Outbox()
    made = deposit(tmp_path, np.zeros(16000, np.int16))

    Delivery(mailboxes=mailboxes, smtp=SmtpConfig(host="127.0.0.1"), counters=counters,
             send=outbox.send).deliver(made)

    assert mailboxes.messages("1002") == [] and outbox.sent == [] and not made.path.exists()
    assert counters["voicemail_messages_silent"] == 1


def test_no_mail_server_keeps_the_message_and_a_failing_one_too(tmp_path: Path,
                                                                 mailboxes: VoicemailService) -> None:
    counters: dict[str, int] = {}
    Delivery(mailboxes=mailboxes, smtp=SmtpConfig(), counters=counters).deliver(deposit(tmp_path, tone(1.0)))
    assert counters["voicemail_emails_sent"] == counters["voicemail_emails_failed"] == 0

    Delivery(mailboxes=mailboxes, smtp=SmtpConfig(host="127.0.0.1"), counters=counters,
             send=Outbox(ConnectionRefusedError(111, "refused")).send).deliver(deposit(tmp_path, tone(1.0)))
    assert counters["voicemail_emails_failed"] == 1
    assert len(mailboxes.messages("1002")) == 2
