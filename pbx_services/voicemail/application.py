"""Voicemail on the application-server frame: leaving a message, and the *97 menu.

A call to `vm*EXT` (a forward to `voicemail`, see `cluster.voicemail`) hears EXT's greeting
(its prompt, or a spoken "EXT is not available") and a beep, then what the caller says is
recorded to a WAV until the caller hangs up, presses #, or the mailbox's longest message is
reached. The closed WAV goes to `deliver` (`delivery.Delivery` in an executor: kept, emailed,
or dropped when silent).

A call to `*97` is the caller's own mailbox (the Call Manager authenticated the caller, whose
extension is the From user): the PIN followed by #, "you have N new messages", then each
message, new ones first: 1 plays it again, 7 deletes it, 9 keeps it, # goes to the next. A
message played is saved (no longer new).

Each call's phase is one of `Phase`; the database is read here on the worker's loop (like the
IVR's menus), and a message's WAV is read when it is played.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import SQLAlchemyError

from ..appserver.core import AppCall
from ..appserver.prompt_catalog import PromptCatalog
from ..appserver.sounds import Announcements, tone_sequence
from ..cluster.models import MessageStatus
from ..cluster.voicemail import VOICEMAIL_MENU, MailboxInfo, MessageInfo, VoicemailService, mailbox_of
from ..rtp.wav import WavFormatError, read_wav
from ..runtime.file_modes import make_private_dir
from ..runtime.timers import Timer
from .delivery import Deposit

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
BEEP = tone_sequence([1000.0, 1000.0, 1000.0])
PIN_TIMEOUT = 20.0
"""Seconds to enter the PIN before the menu gives up on that try."""
PIN_TRIES = 3
KEY_TIMEOUT = 10.0
"""Seconds after a message's options before the next message plays."""
MAX_PIN_DIGITS = 16


class Phase(enum.Enum):
    GREETING = "greeting"
    """A deposit: the greeting and the beep play."""
    RECORDING = "recording"
    """A deposit: the caller's audio goes to the WAV."""
    PIN = "pin"
    """The menu: the caller enters the PIN."""
    MESSAGE = "message"
    """The menu: a message (its heading, audio and options) plays."""
    OPTIONS = "options"
    """The menu: the options played; waiting for a key."""
    CLOSING = "closing"
    """Saying goodbye; hung up when it has been said."""


@dataclass(eq=False)
class _VoicemailCall:
    extension: str
    """Whose mailbox."""
    phase: Phase
    timer: Timer | None = None
    deposit: Deposit | None = None
    """A deposit's message, until it is handed to `deliver`."""
    max_seconds: int = 0
    """A deposit: the longest message the mailbox takes."""
    pin: str = ""
    pin_tries: int = 0
    messages: list[MessageInfo] = field(default_factory=list)
    index: int = 0


def spell(number: str) -> str:
    """A number said digit by digit ("1 0 0 2"), as extensions are read out."""
    return " ".join(number) if number.isdigit() else number


class VoicemailApplication:
    def __init__(self, *, mailboxes: VoicemailService, prompts: PromptCatalog, announcements: Announcements,
                 directory: Path, deliver: Callable[[Deposit], None], wall_offset: float,
                 counters: dict[str, int] | None = None) -> None:
        """`directory`: where messages' WAVs are kept (shared by the IVR servers of a cluster);
        `deliver`: what takes a recorded message (in an executor)."""
        self._mailboxes = mailboxes
        self._prompts = prompts
        self._say = announcements.say
        self._directory = directory
        self._deliver = deliver
        self._wall_offset = wall_offset
        self.counters = counters if counters is not None else {}
        for name in ("voicemail_deposits", "voicemail_menu_calls", "voicemail_pin_failures"):
            self.counters.setdefault(name, 0)

    # -- the frame's events -----------------------------------------------------------------

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        if number == VOICEMAIL_MENU:
            return None
        extension = mailbox_of(number)
        if extension is not None and self._mailbox(domain, extension) is not None:
            return None
        return 404, "No Such Mailbox"

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return []

    def call_started(self, call: AppCall, now: float) -> None:
        if call.number == VOICEMAIL_MENU:
            self._start_menu(call, now)
            return
        extension = mailbox_of(call.number) or ""
        mailbox = self._mailbox(call.domain, extension)
        state = call.app_data = _VoicemailCall(extension, Phase.GREETING)
        if mailbox is None:
            self._close(call, state, [self._say("This mailbox is not available. Goodbye.")], now)
            return
        if mailbox.new + mailbox.saved >= mailbox.max_messages:
            log.info("voicemail for %s@%s from %s: the mailbox is full", extension, call.domain, call.caller)
            self._close(call, state, [self._say(f"The mailbox of {spell(extension)} is full. Goodbye.")], now)
            return
        self.counters["voicemail_deposits"] += 1
        greeting = None
        if mailbox.greeting_prompt:
            greeting = self._prompts.prompt(call.domain, mailbox.greeting_prompt, now)
            if greeting is None:
                log.warning("mailbox %s@%s: greeting prompt %s is gone; the spoken one plays", extension,
                            call.domain, mailbox.greeting_prompt)
        if greeting is None:
            greeting = self._say(f"{spell(extension)} is not available. Please leave a message after the "
                                 "tone, and press pound when you are done.")
        state.max_seconds = mailbox.max_seconds
        state.deposit = self._new_deposit(call, extension, now)
        call.play([greeting, BEEP], now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        state = self._state(call)
        if state is None:
            return
        for digit in digits:
            if state.phase is Phase.RECORDING and digit == "#":
                self._stop_recording(call, state)
                self._close(call, state, [self._say("Thank you. Goodbye.")], now)
            elif state.phase is Phase.PIN:
                self._pin_digit(call, state, digit, now)
            elif state.phase in (Phase.MESSAGE, Phase.OPTIONS):
                self._message_key(call, state, digit, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        state = self._state(call)
        if state is None:
            return
        if state.phase is Phase.GREETING:
            self._start_recording(call, state, now)
        elif state.phase is Phase.CLOSING:
            call.hang_up(now)
        elif state.phase is Phase.MESSAGE:
            state.phase = Phase.OPTIONS
            self._arm(call, state, now + KEY_TIMEOUT, lambda t: self._next_message(call, state, t))

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        """Voicemail transfers nothing."""

    def call_ended(self, call: AppCall, now: float) -> None:
        state = self._state(call)
        if state is None:
            return
        self._cancel_timer(state)
        self._stop_recording(call, state)

    # -- leaving a message ----------------------------------------------------------------------

    def _new_deposit(self, call: AppCall, extension: str, now: float) -> Deposit:
        received = datetime.fromtimestamp(now + self._wall_offset, UTC)
        relative = (f"{call.domain}/{extension}/{received.strftime('%Y%m%dT%H%M%S')}-"
                    f"{secrets.token_hex(4)}.wav")
        return Deposit(domain=call.domain, extension=extension, caller=call.caller,
                       path=self._directory / relative, relative_path=relative, received_at=received)

    def _start_recording(self, call: AppCall, state: _VoicemailCall, now: float) -> None:
        deposit = state.deposit
        assert deposit is not None
        try:
            make_private_dir(deposit.path.parent)
            call.audio.record(deposit.path)
        except OSError as exc:
            log.error("voicemail for %s@%s: cannot record to %s: %s", state.extension, call.domain,
                      deposit.path, exc)
            state.deposit = None
            self._close(call, state, [self._say("Sorry, no message can be left now. Goodbye.")], now)
            return
        state.phase = Phase.RECORDING
        self._arm(call, state, now + state.max_seconds, lambda t: self._recording_limit(call, state, t))

    def _recording_limit(self, call: AppCall, state: _VoicemailCall, now: float) -> None:
        self._stop_recording(call, state)
        self._close(call, state, [BEEP, self._say("Thank you. Goodbye.")], now)

    def _stop_recording(self, call: AppCall, state: _VoicemailCall) -> None:
        """The message is over: its WAV closed and handed to `deliver` (once)."""
        if state.phase is not Phase.RECORDING or state.deposit is None:
            return
        call.audio.stop_recording()
        deposit, state.deposit = state.deposit, None
        state.phase = Phase.CLOSING
        self._deliver(deposit)

    # -- the menu -------------------------------------------------------------------------------

    def _start_menu(self, call: AppCall, now: float) -> None:
        self.counters["voicemail_menu_calls"] += 1
        state = call.app_data = _VoicemailCall(call.caller, Phase.PIN)
        if self._mailbox(call.domain, call.caller) is None:
            self._close(call, state, [self._say("You have no mailbox. Goodbye.")], now)
            return
        self._ask_pin(call, state, [], now)

    def _ask_pin(self, call: AppCall, state: _VoicemailCall, before: list[Samples], now: float) -> None:
        state.phase, state.pin = Phase.PIN, ""
        call.play([*before, self._say("Please enter your PIN, then press pound.")], now)
        self._arm(call, state, now + PIN_TIMEOUT, lambda t: self._pin_entered(call, state, t))

    def _pin_digit(self, call: AppCall, state: _VoicemailCall, digit: str, now: float) -> None:
        if digit == "#":
            self._pin_entered(call, state, now)
        elif len(state.pin) < MAX_PIN_DIGITS:
            call.stop_playback()
            state.pin += digit

    def _pin_entered(self, call: AppCall, state: _VoicemailCall, now: float) -> None:
        self._cancel_timer(state)
        try:
            matches = bool(state.pin) and self._mailboxes.pin_matches(call.domain, state.extension, state.pin)
            messages = self._mailboxes.mailbox_messages(call.domain, state.extension) if matches else []
        except SQLAlchemyError:
            log.exception("voicemail menu of %s@%s: the database failed", state.extension, call.domain)
            self._close(call, state, [self._say("Sorry, your messages cannot be reached now. Goodbye.")], now)
            return
        if not matches:
            self.counters["voicemail_pin_failures"] += 1
            state.pin_tries += 1
            log.info("voicemail menu of %s@%s: wrong PIN (try %d)", state.extension, call.domain,
                     state.pin_tries)
            if state.pin_tries >= PIN_TRIES:
                self._close(call, state, [self._say("Wrong PIN. Goodbye.")], now)
            else:
                self._ask_pin(call, state, [self._say("Wrong PIN.")], now)
            return
        state.messages = messages
        state.index = 0
        new = sum(1 for message in messages if message.status is MessageStatus.NEW)
        saved = len(messages) - new
        if not messages:
            self._close(call, state, [self._say("You have no messages. Goodbye.")], now)
            return
        summary = f"You have {new} new {'message' if new == 1 else 'messages'}"
        if saved:
            summary += f" and {saved} saved {'message' if saved == 1 else 'messages'}"
        self._play_message(call, state, [self._say(summary + ".")], now)

    def _play_message(self, call: AppCall, state: _VoicemailCall, before: list[Samples], now: float) -> None:
        self._cancel_timer(state)
        if state.index >= len(state.messages):
            self._close(call, state, [*before, self._say("No more messages. Goodbye.")], now)
            return
        message = state.messages[state.index]
        heading = self._say(f"Message {state.index + 1}, from {spell(message.caller or 'unknown')}.")
        options = self._say("Press 1 to play it again, 7 to delete it, 9 to save it, or pound for the next "
                            "message.")
        audio = self._message_audio(message)
        state.phase = Phase.MESSAGE
        call.play([*before, heading, *([audio] if audio is not None else []), options], now)
        if message.status is MessageStatus.NEW:
            self._set_status(call, state, message, MessageStatus.SAVED)

    def _message_audio(self, message: MessageInfo) -> Samples | None:
        try:
            wav = read_wav(self._directory / message.path)
        except (OSError, WavFormatError) as exc:
            log.error("voicemail message %d: its audio cannot be read: %s", message.id, exc)
            return None
        return wav.samples if wav.samples.ndim == 1 else wav.samples[:, 0].copy()

    def _message_key(self, call: AppCall, state: _VoicemailCall, digit: str, now: float) -> None:
        message = state.messages[state.index]
        if digit == "1":
            call.stop_playback()
            self._play_message(call, state, [], now)
        elif digit == "7":
            call.stop_playback()
            self._delete(call, state, message)
            state.index += 1
            self._play_message(call, state, [self._say("Message deleted.")], now)
        elif digit in ("9", "#"):
            call.stop_playback()
            state.index += 1
            self._play_message(call, state, [self._say("Message saved.")] if digit == "9" else [], now)

    def _next_message(self, call: AppCall, state: _VoicemailCall, now: float) -> None:
        state.timer = None
        state.index += 1
        self._play_message(call, state, [], now)

    def _set_status(self, call: AppCall, state: _VoicemailCall, message: MessageInfo,
                    status: MessageStatus) -> None:
        try:
            self._mailboxes.set_status(call.domain, state.extension, message.id, status)
        except SQLAlchemyError:
            log.exception("voicemail message %d of %s@%s: not marked %s", message.id, state.extension,
                          call.domain, status.value)

    def _delete(self, call: AppCall, state: _VoicemailCall, message: MessageInfo) -> None:
        try:
            path = self._mailboxes.delete_message(call.domain, state.extension, message.id)
        except SQLAlchemyError:
            log.exception("voicemail message %d of %s@%s: not deleted", message.id, state.extension,
                          call.domain)
            return
        if path is not None:
            (self._directory / path).unlink(missing_ok=True)

    # -- helpers --------------------------------------------------------------------------------

    def _mailbox(self, domain: str, extension: str) -> MailboxInfo | None:
        try:
            return self._mailboxes.mailbox(domain, extension)
        except SQLAlchemyError:
            log.exception("mailbox %s@%s: the database failed", extension, domain)
            return None

    def _close(self, call: AppCall, state: _VoicemailCall, prompts: list[Samples], now: float) -> None:
        self._cancel_timer(state)
        state.phase = Phase.CLOSING
        call.play(prompts, now)

    def _arm(self, call: AppCall, state: _VoicemailCall, deadline: float,
             callback: Callable[[float], None]) -> None:
        self._cancel_timer(state)

        def fire(t: float) -> None:
            state.timer = None
            callback(t)

        state.timer = call.schedule(deadline, fire)

    @staticmethod
    def _cancel_timer(state: _VoicemailCall) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

    @staticmethod
    def _state(call: AppCall) -> _VoicemailCall | None:
        state = call.app_data
        return state if isinstance(state, _VoicemailCall) else None
