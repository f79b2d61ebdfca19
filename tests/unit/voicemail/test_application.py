"""The voicemail application's calls, driven as the frame drives them: a message left (greeting,
beep, recorded until # or the mailbox's limit), refused numbers, and the *97 menu (PIN, the
summary, a message played, saved and deleted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pbx_services.appserver.sounds import Announcements
from pbx_services.cluster.models import MessageStatus
from pbx_services.cluster.voicemail import VoicemailService
from pbx_services.rtp.wav import write_wav
from pbx_services.runtime.timers import Timer, TimerQueue
from pbx_services.voicemail.application import BEEP, VoicemailApplication
from pbx_services.voicemail.delivery import Deposit

from .conftest import DOMAIN, PIN

START = 1000.0


class FakeAudio:
    def __init__(self) -> None:
        self.recording: Path | None = None
        self.recorded: list[Path] = []

    def record(self, path: Path) -> None:
        self.recording = path

    def stop_recording(self) -> None:
        if self.recording is not None:
            write_wav(self.recording, 8000, np.full(800, 5000, np.int16))
            self.recorded.append(self.recording)
        self.recording = None


@dataclass(eq=False)
class FakeCall:
    """An `AppCall` as the application uses it; what it was made to play, in order."""

    number: str
    caller: str
    timers: TimerQueue
    domain: str = DOMAIN
    call_id: str = "call-1"
    app_data: Any = None
    audio: FakeAudio = field(default_factory=FakeAudio)
    played: list[list[np.ndarray]] = field(default_factory=list)
    hung_up: bool = False

    def play(self, prompts: list[np.ndarray], now: float) -> None:
        self.played.append(prompts)

    def stop_playback(self) -> None:
        pass

    def hang_up(self, now: float) -> None:
        self.hung_up = True

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Timer:
        return self.timers.schedule(deadline, callback)


class Voice:
    """Announcements whose audio says which sentence it is: sentence i is `i` repeated."""

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.announcements = Announcements(speak=self._speak)

    def _speak(self, text: str) -> np.ndarray:
        self.sentences.append(text)
        return np.full(8, len(self.sentences), np.int16)

    def said(self, samples: np.ndarray) -> str:
        return self.sentences[int(samples[0]) - 1]


@pytest.fixture
def voice() -> Voice:
    return Voice()


@pytest.fixture
def deposits() -> list[Deposit]:
    return []


@pytest.fixture
def application(mailboxes: VoicemailService, voice: Voice, tmp_path: Path,
                deposits: list[Deposit]) -> VoicemailApplication:
    return VoicemailApplication(mailboxes=mailboxes, prompts=None,  # type: ignore[arg-type]
                                announcements=voice.announcements, directory=tmp_path,
                                deliver=deposits.append, wall_offset=1_780_000_000.0)


def test_numbers_without_a_mailbox_are_refused(application: VoicemailApplication) -> None:
    assert application.refusal("vm*1002", DOMAIN, START) is None
    assert application.refusal("*97", DOMAIN, START) is None
    assert application.refusal("vm*1001", DOMAIN, START) == (404, "No Such Mailbox")


def test_a_message_is_recorded_after_the_greeting_until_pound(
        application: VoicemailApplication, voice: Voice, deposits: list[Deposit], tmp_path: Path) -> None:
    call = FakeCall("vm*1002", "1001", TimerQueue())
    application.call_started(call, START)  # type: ignore[arg-type]
    [[greeting, beep]] = call.played
    assert voice.said(greeting).startswith("1 0 0 2 is not available. Please leave a message after the tone")
    assert beep is BEEP

    application.playback_finished(call, START + 5)  # type: ignore[arg-type]
    recording = call.audio.recording
    assert recording is not None and recording.is_relative_to(tmp_path / DOMAIN / "1002")
    application.digits(call, ["#"], START + 9)  # type: ignore[arg-type]

    [made] = deposits
    assert (made.domain, made.extension, made.caller) == (DOMAIN, "1002", "1001")
    assert made.path == call.audio.recorded[0] and made.path == tmp_path / made.relative_path
    assert voice.said(call.played[-1][0]) == "Thank you. Goodbye."
    application.playback_finished(call, START + 10)  # type: ignore[arg-type]
    assert call.hung_up
    application.call_ended(call, START + 10)  # type: ignore[arg-type]
    assert len(deposits) == 1


def test_a_message_ends_at_the_mailboxes_limit_or_when_the_caller_hangs_up(
        application: VoicemailApplication, mailboxes: VoicemailService, deposits: list[Deposit]) -> None:
    mailboxes.enable("1002", pin=None, max_seconds=30)
    timers = TimerQueue()
    call = FakeCall("vm*1002", "1001", timers)
    application.call_started(call, START)  # type: ignore[arg-type]
    application.playback_finished(call, START + 5)  # type: ignore[arg-type]

    timers.run_due(START + 34.9)
    assert deposits == []
    timers.run_due(START + 35)
    assert len(deposits) == 1 and call.played[-1][0] is BEEP

    other = FakeCall("vm*1002", "1003", timers, call_id="call-2")
    application.call_started(other, START)  # type: ignore[arg-type]
    application.playback_finished(other, START + 5)  # type: ignore[arg-type]
    application.call_ended(other, START + 8)  # type: ignore[arg-type]
    assert [d.caller for d in deposits] == ["1001", "1003"]


def test_a_full_mailbox_takes_no_message(application: VoicemailApplication, mailboxes: VoicemailService,
                                         voice: Voice) -> None:
    mailboxes.enable("1002", pin=None, max_messages=1)
    mailboxes.add_message(DOMAIN, "1002", caller="1003", duration=1.0, path="x.wav",
                          received_at=datetime.now(UTC))
    call = FakeCall("vm*1002", "1001", TimerQueue())
    application.call_started(call, START)  # type: ignore[arg-type]
    assert voice.said(call.played[0][0]) == "The mailbox of 1 0 0 2 is full. Goodbye."


def test_the_menu_asks_the_pin_and_plays_the_new_message(application: VoicemailApplication,
                                                         mailboxes: VoicemailService, voice: Voice,
                                                         tmp_path: Path) -> None:
    audio = np.arange(1600, dtype=np.int16)
    write_wav(tmp_path / "m1.wav", 8000, audio)
    first = mailboxes.add_message(DOMAIN, "1002", caller="1001", duration=0.2, path="m1.wav",
                                  received_at=datetime.now(UTC))
    write_wav(tmp_path / "m2.wav", 8000, audio)
    second = mailboxes.add_message(DOMAIN, "1002", caller="1003", duration=0.2, path="m2.wav",
                                   received_at=datetime.now(UTC))
    assert first is not None and second is not None
    call = FakeCall("*97", "1002", TimerQueue())
    application.call_started(call, START)  # type: ignore[arg-type]
    assert voice.said(call.played[-1][0]) == "Please enter your PIN, then press pound."

    application.digits(call, list("1111#"), START + 3)  # type: ignore[arg-type]
    assert [voice.said(p) for p in call.played[-1]] == ["Wrong PIN.",
                                                        "Please enter your PIN, then press pound."]
    application.digits(call, [*PIN, "#"], START + 6)  # type: ignore[arg-type]

    summary, heading, message, options = call.played[-1]
    assert voice.said(summary) == "You have 2 new messages."
    assert voice.said(heading) == "Message 1, from 1 0 0 1."
    assert np.array_equal(message, audio)
    assert voice.said(options).startswith("Press 1 to play it again, 7 to delete it")
    assert [m.status for m in mailboxes.messages("1002")] == [MessageStatus.NEW, MessageStatus.SAVED]

    application.digits(call, ["7"], START + 8)  # type: ignore[arg-type]
    deleted, heading, _, _ = call.played[-1]
    assert (voice.said(deleted), voice.said(heading)) == ("Message deleted.", "Message 2, from 1 0 0 3.")
    assert not (tmp_path / "m1.wav").exists()
    application.digits(call, ["9"], START + 9)  # type: ignore[arg-type]
    assert [voice.said(p) for p in call.played[-1]] == ["Message saved.", "No more messages. Goodbye."]
    assert [(m.id, m.status) for m in mailboxes.messages("1002")] == [(second.id, MessageStatus.SAVED)]


def test_the_menu_hangs_up_after_three_wrong_pins(application: VoicemailApplication, voice: Voice) -> None:
    timers = TimerQueue()
    call = FakeCall("*97", "1002", timers)
    application.call_started(call, START)  # type: ignore[arg-type]
    application.digits(call, list("1#2#"), START + 1)  # type: ignore[arg-type]
    timers.run_due(START + 30)  # the third try: nothing entered in time
    assert voice.said(call.played[-1][0]) == "Wrong PIN. Goodbye."
    assert application.counters["voicemail_pin_failures"] == 3


def test_the_menu_of_a_user_without_a_mailbox(application: VoicemailApplication, voice: Voice) -> None:
    call = FakeCall("*97", "1001", TimerQueue())
    application.call_started(call, START)  # type: ignore[arg-type]
    assert voice.said(call.played[0][0]) == "You have no mailbox. Goodbye."
