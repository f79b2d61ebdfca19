"""Voicemail end to end (issue 13): pjsua2 phones on `pbx allinone`, a real SMTP server
(aiosmtpd) taking the IVR server's email.

1001 calls 1002, whose no-answer forward (after 5 s) is `voicemail`; 1001's phone sends a
steady tone, which is what the message records. Then: 1002's phone, subscribed to its
message summary, gets a NOTIFY with one new voice message; the email reaches the SMTP server
with the WAV attached, the tone in it; 1002 dials *97, enters its PIN and hears the message
(its tone in what the phone received), after which the NOTIFY says the message is old.
Everything is set up with the `pbx` command as an administrator would.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiosmtpd.controller import Controller

from pbx_services.rtp.wav import read_wav, write_wav
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received, tone
from tests.smtp_server import Inbox

pytestmark = pytest.mark.integration

MESSAGE_TONE = 850.0
"""What 1001 says: no DTMF frequency, not the beep's 1 kHz, not the 440 Hz of a prompt without espeak."""
PIN = "4321"
MAILBOX_EMAIL = "bob@example.com"
NO_ANSWER_SECONDS = 5


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def server(tmp_path: Path, inbox: tuple[Inbox, int]) -> Iterator[PbxServer]:
    data_dir = tmp_path / "data"
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    passwords = {extension: secrets.token_urlsafe(12) for extension in ("1001", "1002")}
    for extension, password in passwords.items():
        pbx("user", "add", extension, f"--password={password}", *directory)
    enabled = pbx("voicemail", "enable", "1002", "--pin", PIN, "--email", MAILBOX_EMAIL,
                  "--max-seconds", "30", *directory).stdout
    assert enabled.strip() == (f"voicemail of 1002@pbx.local: email {MAILBOX_EMAIL}, greeting spoken, up to "
                               "100 messages of 30 s")
    pbx("user", "forward", "1002", "--no-answer", "voicemail", "--after", str(NO_ANSWER_SECONDS), *directory)
    env = {"PBX_SMTP__HOST": "127.0.0.1", "PBX_SMTP__PORT": str(inbox[1]),
           "PBX_SMTP__FROM_ADDRESS": "pbx@pbx.local"}
    with running_pbx(data_dir, env) as started:
        started.passwords.update(passwords)
        yield started


def phone(server: PbxServer, user: str, **options: Any) -> Pjsua2Phone:
    made = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address, port=free_port(),
                       domain=server.domain, **options)
    assert made.register()["code"] == 200
    return made


def state(device: Pjsua2Phone, index: int, *states: str, timeout: float = 20.0) -> dict[str, Any]:
    return device.wait_for("call_state", lambda e: e["index"] == index and e["state"] in states,
                           timeout=timeout)


def mwi(device: Pjsua2Phone, summary: str, timeout: float = 15.0) -> dict[str, Any]:
    """The message-summary NOTIFY saying `summary` ("Voice-Message: 1/0"), among those seen already
    (while waiting for other events) or the next ones."""
    def says(event: dict[str, Any]) -> bool:
        return event.get("event") == "mwi" and summary in event["body"]

    return next((event for event in device.seen() if says(event)), None) or device.wait_for(
        "mwi", says, timeout=timeout)


def tonal_seconds(samples: npt.NDArray[np.float64], frequency: float) -> int:
    """Half-second windows in which `frequency` is most of the sound (a steady tone there, not
    speech, whose energy spreads over many frequencies)."""
    count = 0
    for start in range(0, len(samples) - RATE // 2 + 1, RATE // 2):
        window = samples[start:start + RATE // 2]
        rms = float(np.sqrt(np.mean(window ** 2)))
        if rms > 300 and level_at(window, frequency) > 0.8 * np.sqrt(2) * rms:
            count += 1
    return count


def test_voicemail_left_notified_emailed_and_heard_through_star_97(
        server: PbxServer, inbox: tuple[Inbox, int], tmp_path: Path) -> None:
    spoken = tmp_path / "message.wav"
    write_wav(spoken, RATE, tone(MESSAGE_TONE, 5.0, level=8000))
    heard = tmp_path / "heard-1002.wav"
    caller = phone(server, "1001", play=spoken)
    callee = phone(server, "1002", mwi=True, record=heard)
    try:
        first = mwi(callee, "Voice-Message: 0/0", timeout=10)
        assert "Messages-Waiting: no" in first["body"]

        # No answer: after 5 s of ringing the call goes to 1002's mailbox, which answers.
        caller.send("call", uri=f"sip:1002@{server.address}")
        callee.wait_for("incoming", timeout=10)
        started = time.monotonic()
        assert state(caller, 0, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
        answered_after = time.monotonic() - started
        state(callee, 0, "DISCONNECTED", timeout=5)
        print(f"voicemail answered {answered_after:.1f} s after 1002's phone rang")
        assert NO_ANSWER_SECONDS - 0.5 < answered_after < NO_ANSWER_SECONDS + 3
        time.sleep(14)  # the greeting and the beep, then about 5 s of the tone recorded
        caller.send("hangup")
        state(caller, 0, "DISCONNECTED", timeout=5)

        # Message-waiting: one new voice message.
        waiting = mwi(callee, "Voice-Message: 1/0")
        assert "Messages-Waiting: yes" in waiting["body"]
        assert "Message-Account: sip:1002@pbx.local" in waiting["body"]

        # The email, the WAV attached, the tone in it.
        [(recipients, message)] = inbox[0].wait(1, timeout=15)
        assert recipients == [MAILBOX_EMAIL]
        assert message["Subject"] == "New voicemail for 1002 from 1001"
        [attachment] = list(message.iter_attachments())
        assert attachment.get_content_type() == "audio/wav"
        attached = read_wav(io.BytesIO(attachment.get_content()))
        attached_tone = tonal_seconds(attached.samples.astype(np.float64), MESSAGE_TONE)
        print(f"emailed WAV: {attached.duration:.1f} s, {attached_tone} half-seconds of the tone")
        assert attached_tone >= 4
        listed = pbx("voicemail", "messages", "1002", "--data-dir", str(server.data_dir)).stdout
        assert "new" in listed and "1001" in listed

        # *97: the PIN, then the message is played.
        callee.send("call", uri=f"sip:*97@{server.address}")
        assert state(callee, 1, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
        time.sleep(1.0)
        callee.dtmf(f"{PIN}#")
        time.sleep(22)  # "you have 1 new message", its heading, the message, the options
        callee.send("hangup")
        state(callee, 1, "DISCONNECTED", timeout=5)
        old = mwi(callee, "Voice-Message: 0/1")
        assert "Messages-Waiting: no" in old["body"]
    finally:
        caller.close()
        callee.close()
    samples = received(heard)
    played_tone = tonal_seconds(samples, MESSAGE_TONE)
    print(f"1002 heard {len(samples) / RATE:.1f} s in all, {played_tone} half-seconds of the message's tone")
    assert played_tone >= 4
    assert "saved" in pbx("voicemail", "messages", "1002", "--data-dir", str(server.data_dir)).stdout
