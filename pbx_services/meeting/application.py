"""Meetings on the application-server frame: callers of a room's number enter its PIN and
talk in its mix.

A call to a room is answered, asked for the PIN (when the room has one), and joins the
room's meeting on this worker: the mix (`mix.RoomMix`) of everyone in it. A caller who
enters the moderator PIN is a moderator. Keys in the meeting:

    1  mute or unmute yourself          2  how many are in the meeting
    3  lock or unlock the room (moderator: nobody else may join)
    4  mute or unmute everyone else (moderator)
    9  end the meeting for everyone (moderator)

An unknown room, a full or locked one, and too many wrong PINs each get an announcement and a
clean hang-up. With `wait_for_moderator` callers hear music until a moderator joins; with
`end_with_moderator` the meeting ends when the last moderator leaves. A recorded room writes
the mix to one WAV per meeting.

The control API (`runtime.control`, resources under /api/meetings) lists the meetings of
this worker with their participants (numbered from 1 in each meeting), and mutes, removes,
locks, records and ends, as a moderator's keys do. Talker detection (who starts and stops
talking) is published as `MeetingTalker` events.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..appserver.audio import CallAudio
from ..appserver.core import AppCall
from ..appserver.sounds import HOLD_MUSIC, Announcements
from ..cluster.events import MeetingTalker
from ..cluster.meetings import MeetingRoomInfo
from ..rtp.wav import WavWriter
from ..runtime.control import ControlReply, ControlRequest
from ..runtime.timers import Timer
from ..sip.headers import PBX_RECORDING
from . import sounds
from .catalog import RoomCatalog
from .mix import Member, RoomMix

log = logging.getLogger(__name__)

PIN_TIMEOUT = 15.0
"""Seconds to enter a PIN after the prompt ends before it counts as a wrong one."""
MAX_PIN_DIGITS = 16
CONTROL_PATHS = ("meetings",)


class Phase(enum.Enum):
    PIN = "pin"
    WAITING = "waiting"
    """Admitted, hearing music until a moderator joins."""
    IN = "in"
    LEAVING = "leaving"
    """Hearing a last announcement, then hung up."""


@dataclass(eq=False)
class Guest:
    call: AppCall
    room: Meeting | None
    number: int = 0
    """Its number in the meeting, from 1 (for the control API)."""
    phase: Phase = Phase.PIN
    entered: str = ""
    wrong_pins: int = 0
    moderator: bool = False
    member: Member | None = None
    timer: Timer | None = None
    joined_at: datetime | None = None
    """When it was admitted (wall clock)."""


@dataclass(eq=False)
class Meeting:
    """A room's meeting on this worker, from its first caller to its last."""

    settings: MeetingRoomInfo
    started_at: datetime
    mix: RoomMix = field(default_factory=RoomMix)
    guests: list[Guest] = field(default_factory=list)
    locked: bool = False
    others_muted: bool = False
    recording: Path | None = None
    guests_seen: int = 0

    @property
    def admitted(self) -> list[Guest]:
        return [g for g in self.guests if g.phase in (Phase.IN, Phase.WAITING)]

    @property
    def moderators(self) -> int:
        return sum(1 for g in self.admitted if g.moderator)


class MeetingApplication:
    def __init__(self, *, catalog: RoomCatalog, announcements: Announcements, recording_dir: Path,
                 wall_offset: float, publish: Callable[[object], None] | None = None,
                 server_name: str = "") -> None:
        self._catalog = catalog
        self._say = announcements.say
        self._recording_dir = recording_dir
        self._wall_offset = wall_offset
        self._publish = publish
        """Where talker events go (the cluster's bus); None: counted only."""
        self._server_name = server_name
        self.meetings: dict[tuple[str, str], Meeting] = {}
        self._next_recordings: dict[tuple[str, str], Path] = {}
        """Recordings already named to a caller, for meetings not started yet."""
        self.counters = {"meetings": 0, "joins": 0, "wrong_pins": 0, "refused_full": 0, "refused_locked": 0,
                         "unknown_rooms": 0, "talk_spurts": 0}

    # -- the frame's events -----------------------------------------------------------------

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        return None  # an unknown room is answered and announced, not refused in silence

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        """A recorded room's recording, named in our 200 so that the Call Manager puts it in
        the caller's CDR (the meeting's file if it runs, else the one the next meeting will write)."""
        settings = self._catalog.room(call.domain, call.number, now)
        if settings is None or not settings.record:
            return []
        key = (settings.tenant_domain, settings.number)
        meeting = self.meetings.get(key)
        path = meeting.recording if meeting is not None else self._next_recordings.setdefault(
            key, self._recording_path(settings, now))
        return [(PBX_RECORDING, str(path))] if path is not None else []

    def call_started(self, call: AppCall, now: float) -> None:
        settings = self._catalog.room(call.domain, call.number, now)
        if settings is None:
            self.counters["unknown_rooms"] += 1
            log.info("call %s: no meeting room %s@%s", call.call_id, call.number, call.domain)
            guest = call.app_data = Guest(call, None)
            self._leave_with(guest, [self._say(sounds.UNKNOWN_ROOM)], now)
            return
        meeting = self.meetings.get((settings.tenant_domain, settings.number))
        if meeting is None:
            meeting = self._start_meeting(settings, now)
        meeting.guests_seen += 1
        guest = call.app_data = Guest(call, meeting, number=meeting.guests_seen)
        meeting.guests.append(guest)
        if settings.asks_pin:
            call.play([self._say(sounds.ENTER_PIN)], now)
        else:
            self._admit(guest, moderator=False, now=now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        guest: Guest = call.app_data
        for digit in digits:
            if guest.phase is Phase.PIN:
                self._pin_digit(guest, digit, now)
            elif guest.phase is Phase.IN:
                self._control(guest, digit, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        guest: Guest = call.app_data
        if guest.phase is Phase.LEAVING:
            call.hang_up(now)
        elif guest.phase is Phase.WAITING:
            call.play([HOLD_MUSIC], now)
        elif guest.phase is Phase.PIN:
            self._cancel_timer(guest)
            guest.timer = call.schedule(now + PIN_TIMEOUT, lambda t: self._wrong_pin(guest, t))

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        """Meetings transfer no one."""

    def call_ended(self, call: AppCall, now: float) -> None:
        guest: Guest | None = call.app_data
        if guest is None:
            return
        self._cancel_timer(guest)
        meeting = guest.room
        if meeting is None:
            return
        was_moderator = guest.moderator and guest.phase in (Phase.IN, Phase.WAITING)
        was_in = guest.phase is Phase.IN
        guest.phase = Phase.LEAVING
        if guest in meeting.guests:
            meeting.guests.remove(guest)
        if guest.member is not None:
            meeting.mix.remove(guest.member)
        if was_in and meeting.settings.entry_tones:
            self._play_to_others(meeting, guest, [sounds.EXIT_TONE], now)
        if was_moderator and meeting.settings.end_with_moderator and meeting.moderators == 0:
            self._end_meeting(meeting, now)
        if not meeting.guests:
            self._close_meeting(meeting)

    # -- the mixer ----------------------------------------------------------------------------

    @property
    def mixing(self) -> bool:
        return any(meeting.mix.members for meeting in self.meetings.values())

    def tick(self, now: float) -> list[CallAudio]:
        sent: list[CallAudio] = []
        for meeting in self.meetings.values():
            if not meeting.mix.members:
                continue
            audios, changes = meeting.mix.tick()
            sent += audios
            for change in changes:
                self._talker_changed(meeting, change.member, change.talking, now)
        return sent

    def _talker_changed(self, meeting: Meeting, member: Member, talking: bool, now: float) -> None:
        if talking:
            self.counters["talk_spurts"] += 1
        settings = meeting.settings
        log.debug("room %s: %s %s talking", settings.number, member.name, "started" if talking else "stopped")
        if self._publish is not None:
            self._publish(MeetingTalker(domain=settings.tenant_domain, room=settings.number,
                                        participant=member.number, caller=member.name, talking=talking,
                                        server=self._server_name, time=self._wall(now)))

    @property
    def gauges(self) -> dict[str, int]:
        """For /health and /metrics (with `counters`)."""
        return {"rooms": len(self.meetings),
                "participants": sum(len(m.mix.members) for m in self.meetings.values()),
                "talking": sum(member.talking for m in self.meetings.values() for member in m.mix.members)}

    # -- the control API ----------------------------------------------------------------------

    @property
    def control_paths(self) -> tuple[str, ...]:
        return CONTROL_PATHS

    def control(self, request: ControlRequest, now: float) -> ControlReply:
        """GET meetings[/DOMAIN/ROOM]; POST meetings/DOMAIN/ROOM/{lock,recording,end} and
        meetings/DOMAIN/ROOM/participants/N/{mute,kick}; a flag's value in the body
        ({"locked": false}), true when left out."""
        path = request.path[1:]
        if request.method == "GET" and not path:
            return ControlReply(200, {"meetings": [self._describe(m) for m in self.meetings.values()]})
        if len(path) < 2:
            return ControlReply.error(404, "name a meeting: /api/meetings/DOMAIN/ROOM")
        meeting = self.meetings.get((path[0], path[1]))
        if meeting is None:
            return ControlReply.error(404, f"no meeting in room {path[1]}@{path[0]} on this server")
        action = path[2:]
        if request.method == "GET":
            return ControlReply(200, {"meeting": self._describe(meeting)}) if not action else \
                ControlReply.error(404, "no such resource")
        try:
            if action == ("lock",):
                meeting.locked = _flag(request.body, "locked")
            elif action == ("recording",):
                problem = self._set_recording(meeting, _flag(request.body, "recording"), now)
                if problem is not None:
                    return ControlReply.error(500, problem)
            elif action == ("end",):
                log.info("room %s: ended through the control API", meeting.settings.number)
                self._end_meeting(meeting, now)
            elif len(action) == 3 and action[0] == "participants" and action[2] in ("mute", "kick"):
                guest = next((g for g in meeting.guests if str(g.number) == action[1]), None)
                if guest is None or guest.phase is Phase.LEAVING:
                    return ControlReply.error(
                        404, f"no participant {action[1]} in room {meeting.settings.number}")
                if action[2] == "kick":
                    log.info("room %s: participant %d (%s) removed through the control API",
                             meeting.settings.number, guest.number, guest.call.caller)
                    self._leave_with(guest, [self._say(sounds.REMOVED)], now)
                elif guest.member is None:
                    return ControlReply.error(409, f"participant {guest.number} is not in the meeting yet "
                                                   f"({guest.phase.value})")
                else:
                    guest.member.muted = _flag(request.body, "muted")
                    guest.call.play([self._say(sounds.MUTED if guest.member.muted else sounds.UNMUTED)], now)
            else:
                return ControlReply.error(404, "no such action: " + "/".join(action))
        except ValueError as exc:
            return ControlReply.error(400, str(exc))
        return ControlReply(200, {"meeting": self._describe(meeting)})

    def _set_recording(self, meeting: Meeting, on: bool, now: float) -> str | None:
        """Start or stop recording the mix (each start a new file); what went wrong, if anything."""
        if on == (meeting.recording is not None):
            return None
        if on and not self._start_recording(meeting, self._recording_path(meeting.settings, now)):
            return f"cannot record to {self._recording_dir} (the log says why)"
        if not on:
            self._stop_recording(meeting)
        log.info("room %s: recording %s through the control API", meeting.settings.number,
                 f"to {meeting.recording}" if on else "stopped")
        said = self._say(sounds.RECORDING_STARTED if on else sounds.RECORDING_STOPPED)
        for guest in meeting.guests:
            if guest.phase is Phase.IN:
                guest.call.play([said], now)
        return None

    @staticmethod
    def _describe(meeting: Meeting) -> dict[str, object]:
        settings = meeting.settings
        return {"domain": settings.tenant_domain, "room": settings.number,
                "started_at": meeting.started_at.isoformat(), "locked": meeting.locked,
                "recording": str(meeting.recording) if meeting.recording is not None else None,
                "participants": [
                    {"number": guest.number, "caller": guest.call.caller, "state": guest.phase.value,
                     "moderator": guest.moderator,
                     "muted": guest.member.muted if guest.member is not None else None,
                     "talking": guest.member.talking if guest.member is not None else False,
                     "joined_at": guest.joined_at.isoformat() if guest.joined_at is not None else None}
                    for guest in meeting.guests]}

    # -- joining --------------------------------------------------------------------------------

    def _start_meeting(self, settings: MeetingRoomInfo, now: float) -> Meeting:
        meeting = Meeting(settings=settings, started_at=self._wall(now))
        if settings.record:
            named = self._next_recordings.pop((settings.tenant_domain, settings.number), None)
            self._start_recording(meeting, named or self._recording_path(settings, now))
        self.meetings[(settings.tenant_domain, settings.number)] = meeting
        self.counters["meetings"] += 1
        log.info("meeting in room %s@%s started", settings.number, settings.tenant_domain)
        return meeting

    def _wall(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self._wall_offset, UTC)

    def _recording_path(self, settings: MeetingRoomInfo, now: float) -> Path:
        stem = f"meeting-{settings.number}@{settings.tenant_domain}-{self._wall(now):%Y%m%dT%H%M%S}"
        path, copy = self._recording_dir / f"{stem}.wav", 1
        while path.exists():  # recording stopped and started again within the second
            copy += 1
            path = self._recording_dir / f"{stem}-{copy}.wav"
        return path

    def _start_recording(self, meeting: Meeting, path: Path) -> bool:
        try:
            self._recording_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            meeting.mix.recorder = WavWriter(path, 8000)
        except OSError as exc:
            log.error("room %s: cannot record to %s: %s", meeting.settings.number, path, exc)
            return False
        meeting.recording = path
        return True

    def _stop_recording(self, meeting: Meeting) -> None:
        meeting.mix.close()
        meeting.recording = None

    def _close_meeting(self, meeting: Meeting) -> None:
        meeting.mix.close()
        key = (meeting.settings.tenant_domain, meeting.settings.number)
        if self.meetings.get(key) is meeting:
            del self.meetings[key]
        log.info("meeting in room %s@%s ended", *key[::-1])

    def _pin_digit(self, guest: Guest, digit: str, now: float) -> None:
        self._cancel_timer(guest)
        guest.call.stop_playback()
        if digit != "#":
            if len(guest.entered) < MAX_PIN_DIGITS:
                guest.entered += digit
            guest.timer = guest.call.schedule(now + PIN_TIMEOUT, lambda t: self._wrong_pin(guest, t))
            return
        assert guest.room is not None
        settings, entered = guest.room.settings, guest.entered
        guest.entered = ""
        if settings.moderator_pin is not None and entered == settings.moderator_pin:
            self._admit(guest, moderator=True, now=now)
        elif entered == (settings.pin or ""):
            self._admit(guest, moderator=False, now=now)
        else:
            self._wrong_pin(guest, now)

    def _wrong_pin(self, guest: Guest, now: float) -> None:
        if guest.phase is not Phase.PIN or guest.room is None:
            return
        guest.entered = ""
        guest.wrong_pins += 1
        self.counters["wrong_pins"] += 1
        if guest.wrong_pins >= guest.room.settings.pin_tries:
            self._leave_with(guest, [self._say(sounds.WRONG_PIN), self._say(sounds.GOODBYE)], now)
        else:
            guest.call.play([self._say(sounds.WRONG_PIN), self._say(sounds.ENTER_PIN)], now)

    def _admit(self, guest: Guest, *, moderator: bool, now: float) -> None:
        meeting = guest.room
        assert meeting is not None
        settings = meeting.settings
        if meeting.locked and not moderator:
            self.counters["refused_locked"] += 1
            self._leave_with(guest, [self._say(sounds.ROOM_LOCKED)], now)
            return
        if len(meeting.admitted) >= settings.max_participants:
            self.counters["refused_full"] += 1
            self._leave_with(guest, [self._say(sounds.ROOM_FULL)], now)
            return
        guest.moderator = moderator
        guest.joined_at = self._wall(now)
        self.counters["joins"] += 1
        if settings.wait_for_moderator and not moderator and meeting.moderators == 0:
            guest.phase = Phase.WAITING
            guest.call.play([self._say(sounds.WAIT_FOR_MODERATOR), HOLD_MUSIC], now)
            return
        self._join_mix(guest, now)
        if moderator:
            for waiting in [g for g in meeting.guests if g.phase is Phase.WAITING]:
                waiting.call.stop_playback()
                self._join_mix(waiting, now)

    def _join_mix(self, guest: Guest, now: float) -> None:
        meeting = guest.room
        assert meeting is not None
        settings = meeting.settings
        muted = not guest.moderator and (settings.mute_on_entry or meeting.others_muted)
        guest.member = Member(name=guest.call.caller, audio=guest.call.audio, muted=muted,
                              number=guest.number)
        guest.phase = Phase.IN
        meeting.mix.add(guest.member)
        if settings.entry_tones:
            self._play_to_others(meeting, guest, [sounds.ENTRY_TONE], now)
        welcome = ([self._say(sounds.RECORDED)] if meeting.recording is not None else []) + \
            ([self._say(sounds.MUTED)] if muted else [])
        if welcome:
            guest.call.play(welcome, now)

    # -- in the meeting -------------------------------------------------------------------------

    def _control(self, guest: Guest, digit: str, now: float) -> None:
        meeting, member = guest.room, guest.member
        assert meeting is not None and member is not None
        if digit == "1":
            member.muted = not member.muted
            guest.call.play([self._say(sounds.MUTED if member.muted else sounds.UNMUTED)], now)
        elif digit == "2":
            guest.call.play([self._say(sounds.participants(len(meeting.admitted)))], now)
        elif not guest.moderator:
            return
        elif digit == "3":
            meeting.locked = not meeting.locked
            guest.call.play([self._say(sounds.LOCKED if meeting.locked else sounds.UNLOCKED)], now)
        elif digit == "4":
            meeting.others_muted = not meeting.others_muted
            for other in meeting.guests:
                if other.member is not None and not other.moderator:
                    other.member.muted = meeting.others_muted
            said = sounds.ALL_MUTED if meeting.others_muted else sounds.ALL_UNMUTED
            guest.call.play([self._say(said)], now)
        elif digit == "9":
            log.info("room %s: a moderator ended the meeting", meeting.settings.number)
            self._end_meeting(meeting, now)

    def _end_meeting(self, meeting: Meeting, now: float) -> None:
        for guest in list(meeting.guests):
            if guest.phase is not Phase.LEAVING:
                self._leave_with(guest, [self._say(sounds.ENDED)], now)

    def _leave_with(self, guest: Guest, prompts: list[npt.NDArray[np.int16]], now: float) -> None:
        """Out of the mix, the last announcement, then the hang-up (`playback_finished`)."""
        self._cancel_timer(guest)
        if guest.member is not None and guest.room is not None:
            guest.room.mix.remove(guest.member)
            guest.member = None
        guest.phase = Phase.LEAVING
        guest.call.play(prompts, now)

    def _play_to_others(self, meeting: Meeting, guest: Guest, prompts: list[npt.NDArray[np.int16]],
                        now: float) -> None:
        for other in meeting.guests:
            if other is not guest and other.phase is Phase.IN and not other.call.audio.playing:
                other.call.play(prompts, now)

    @staticmethod
    def _cancel_timer(guest: Guest) -> None:
        if guest.timer is not None:
            guest.timer.cancel()
            guest.timer = None


def _flag(body: dict[str, object], key: str) -> bool:
    value = body.get(key, True)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false, not {value!r:.40}")
    return value
