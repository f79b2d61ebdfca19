"""What becomes of a recorded message once the caller is done: kept (a row beside the WAV),
emailed, or dropped when it holds nothing but silence.

Blocking (file, database and SMTP): the worker runs `deliver` in an executor thread, so that
neither a slow mail server nor the database delays its calls' audio. Storing the row moves the
mailbox's `changed_at`, which is how the Call Managers learn to NOTIFY the phone.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import SQLAlchemyError

from ..cluster.config import SmtpConfig
from ..cluster.voicemail import VoicemailService
from ..rtp.wav import WavFormatError, read_wav
from . import mailer

log = logging.getLogger(__name__)

FRAME_SAMPLES = 160
SOUND_RMS = 300.0
"""A 20 ms frame louder than this (about -40 dBFS) holds sound, not line noise."""
MIN_SOUND_SECONDS = 0.2
"""A message with less sound than this in all is silence, and dropped."""


@dataclass(frozen=True, slots=True)
class Deposit:
    """A message recorded and closed, to keep."""

    domain: str
    extension: str
    """Whose mailbox."""
    caller: str
    path: Path
    """The WAV, under the voicemail directory."""
    relative_path: str
    """The same, relative to the voicemail directory (as the database keeps it)."""
    received_at: datetime


def sound_seconds(samples: npt.NDArray[np.int16], sample_rate: int = 8000) -> float:
    """Seconds of the audio whose 20 ms frames are louder than line noise."""
    frames = len(samples) // FRAME_SAMPLES
    if frames == 0:
        return 0.0
    blocks = samples[:frames * FRAME_SAMPLES].astype(np.float64).reshape(frames, FRAME_SAMPLES)
    loud = np.sqrt(np.mean(blocks * blocks, axis=1)) > SOUND_RMS
    return float(np.count_nonzero(loud)) * FRAME_SAMPLES / sample_rate


class Delivery:
    def __init__(self, *, mailboxes: VoicemailService, smtp: SmtpConfig, counters: dict[str, int],
                 send: Callable[[SmtpConfig, EmailMessage], None] = mailer.send) -> None:
        self._mailboxes = mailboxes
        self._smtp = smtp
        self._send = send
        self.counters = counters
        for name in ("voicemail_messages_left", "voicemail_messages_silent", "voicemail_emails_sent",
                     "voicemail_emails_failed"):
            counters.setdefault(name, 0)

    def deliver(self, deposit: Deposit) -> None:
        """Keep, email or drop the message; every failure is logged, none raised."""
        try:
            audio = read_wav(deposit.path)
        except (OSError, WavFormatError) as exc:
            log.error("voicemail for %s@%s from %s lost: %s", deposit.extension, deposit.domain,
                      deposit.caller, exc)
            return
        if sound_seconds(audio.samples, audio.sample_rate) < MIN_SOUND_SECONDS:
            log.info("voicemail for %s@%s from %s: only silence, dropped", deposit.extension, deposit.domain,
                     deposit.caller)
            self.counters["voicemail_messages_silent"] += 1
            deposit.path.unlink(missing_ok=True)
            return
        try:
            message = self._mailboxes.add_message(deposit.domain, deposit.extension, caller=deposit.caller,
                                                  duration=audio.duration, path=deposit.relative_path,
                                                  received_at=deposit.received_at)
            mailbox = self._mailboxes.mailbox(deposit.domain, deposit.extension)
        except SQLAlchemyError:
            log.exception("voicemail for %s@%s from %s not stored (the WAV stays at %s)", deposit.extension,
                          deposit.domain, deposit.caller, deposit.path)
            return
        if message is None or mailbox is None:
            log.info("voicemail for %s@%s: the mailbox is gone, message dropped", deposit.extension,
                     deposit.domain)
            deposit.path.unlink(missing_ok=True)
            return
        self.counters["voicemail_messages_left"] += 1
        log.info("voicemail %d for %s@%s from %s, %.1f s", message.id, deposit.extension, deposit.domain,
                 deposit.caller, audio.duration)
        if mailbox.email and self._smtp.host:
            self._email(deposit, mailbox.email, audio.duration)

    def _email(self, deposit: Deposit, to: str, duration: float) -> None:
        email = mailer.voicemail_email(
            sender=self._smtp.from_address, to=to, extension=deposit.extension, domain=deposit.domain,
            caller=deposit.caller, duration=duration,
            received=deposit.received_at.isoformat(timespec="seconds"), wav=deposit.path)
        try:
            self._send(self._smtp, email)
        except (OSError, smtplib.SMTPException) as exc:
            self.counters["voicemail_emails_failed"] += 1
            log.error("voicemail for %s@%s not emailed to %s through %s:%d: %s", deposit.extension,
                      deposit.domain, to, self._smtp.host, self._smtp.port, exc)
            return
        self.counters["voicemail_emails_sent"] += 1
        log.info("voicemail for %s@%s emailed to %s", deposit.extension, deposit.domain, to)
