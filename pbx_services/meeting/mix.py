"""A room's audio, each 20 ms: who talks, the levelled mix each member hears, the recording.

Sans-IO and vectorised: the frames of all the room's members are decoded with one table
lookup per codec, measured together (voice activity), levelled, mixed with one N-1 sum
(`rtp.mixer.conference_mix`) and encoded with one lookup per codec. A member who is silent
costs a jitter-buffer pop and a send: everyone who does not talk hears the same encoded mix.

Voice activity: a frame louder than VAD_LEVEL (mean absolute sample) is speech, and a talker
stays in the mix for VAD_HANGOVER frames after its last loud one, so that the ends of words
are not clipped; the others' background noise is never summed. Talker detection (for the
events and the portal) is slower: TALK_START loud frames in a row start talking, TALK_STOP
quiet ones stop it.

Levelling: each talker's gain moves slowly (AGC_RATE a frame) towards bringing its level to
TARGET_LEVEL, within MIN_GAIN..MAX_GAIN, so a quiet phone and a loud one are heard alike;
the limiter in `conference_mix` keeps several loud talkers from clipping.

The members' codec at the meeting server is G.711 (the media server in front transcodes for
each phone, so G.722, Opus and the rest meet in one room); a member in another codec is
neither heard nor sent the mix, and says so in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..appserver.audio import FRAME_SAMPLES, CallAudio
from ..rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from ..rtp.mixer import conference_mix
from ..rtp.wav import WavWriter

log = logging.getLogger(__name__)

VAD_LEVEL = 200.0
"""Mean absolute sample above which a frame is speech (about -44 dBov)."""
VAD_HANGOVER = 10
TALK_START = 3
TALK_STOP = 50
TARGET_LEVEL = 3000.0
MIN_GAIN, MAX_GAIN = 0.3, 3.0
AGC_RATE = 0.05
_DECODE = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_ENCODE = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_NO_ROWS = np.zeros((0, FRAME_SAMPLES), dtype=np.int16)


@dataclass(eq=False)
class Member:
    """One participant in the mix."""

    name: str
    audio: CallAudio
    muted: bool = False
    number: int = 0
    """Its participant's number in the meeting."""
    gain: float = 1.0
    hangover: int = 0
    loud_run: int = 0
    quiet_run: int = 0
    talking: bool = False

    @property
    def codec(self) -> str:
        return self.audio.negotiated.codec if self.audio.negotiated is not None else ""


@dataclass(frozen=True, slots=True)
class TalkerChange:
    member: Member
    talking: bool


class RoomMix:
    def __init__(self) -> None:
        self.members: list[Member] = []
        self.recorder: WavWriter | None = None
        self._gain = 1.0
        self._unsupported_logged: set[str] = set()
        self.frames_mixed = 0

    def add(self, member: Member) -> None:
        member.audio.keep_payloads()
        if member.codec not in _DECODE and member.codec not in self._unsupported_logged:
            self._unsupported_logged.add(member.codec)
            log.warning("a meeting member speaks %s at the meeting server: not mixed (G.711 only)",
                        member.codec)
        self.members.append(member)

    def remove(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
        if member.audio.payloads is not None:
            member.audio.payloads.clear()

    def tick(self) -> tuple[list[CallAudio], list[TalkerChange]]:
        """One frame: mix what every member sent since the last tick, send each its mix."""
        members = self.members
        heard: list[Member] = []
        rows: list[npt.NDArray[np.int16]] = []
        changes: list[TalkerChange] = []
        for member in members:
            payloads = member.audio.payloads
            payload = payloads.popleft() if payloads else None
            decode = _DECODE.get(member.codec)
            if payload is None or decode is None or len(payload) != FRAME_SAMPLES:
                self._voice(member, 0.0, changes)  # nothing came: a quiet frame
                continue
            heard.append(member)
            rows.append(decode(payload))
        talkers: list[Member] = []
        frames = np.empty((0, FRAME_SAMPLES), dtype=np.float32)
        if rows:
            decoded = np.stack(rows).astype(np.float32)
            levels = np.abs(decoded).mean(axis=1)
            keep = np.zeros(len(heard), dtype=bool)
            for index, (member, level) in enumerate(zip(heard, levels.tolist(), strict=True)):
                if self._voice(member, level, changes) and not member.muted:
                    keep[index] = True
                    talkers.append(member)
            gains = np.array([member.gain for member in talkers], dtype=np.float32)
            frames = decoded[keep] * gains[:, None]
        if talkers:
            common, own, self._gain = conference_mix(frames, self._gain)
        else:
            common, own, self._gain = _SILENCE, _NO_ROWS, 1.0
        if self.recorder is not None:
            self.recorder.write(common)
        sent = self._send(common, own, talkers)
        self.frames_mixed += 1
        return sent, changes

    def _voice(self, member: Member, level: float, changes: list[TalkerChange]) -> bool:
        """Voice activity of one frame: whether `member` is in this frame's mix (levelling it)."""
        loud = level > VAD_LEVEL
        if loud:
            member.hangover = VAD_HANGOVER
            member.loud_run += 1
            member.quiet_run = 0
            wanted = min(MAX_GAIN, max(MIN_GAIN, TARGET_LEVEL / level))
            member.gain += (wanted - member.gain) * AGC_RATE
            if not member.talking and member.loud_run >= TALK_START:
                member.talking = True
                changes.append(TalkerChange(member, True))
            return True
        member.loud_run = 0
        member.quiet_run += 1
        if member.talking and member.quiet_run >= TALK_STOP:
            member.talking = False
            changes.append(TalkerChange(member, False))
        if member.hangover > 0:
            member.hangover -= 1
            return True
        return False

    def _send(self, common: npt.NDArray[np.int16], own: npt.NDArray[np.int16],
              talkers: list[Member]) -> list[CallAudio]:
        encoded_common: dict[str, bytes] = {}
        own_of = {id(member): index for index, member in enumerate(talkers)}
        encoded_own: dict[str, bytes] = {}
        sent = []
        for member in self.members:
            codec = member.codec
            encode = _ENCODE.get(codec)
            if encode is None:
                continue
            index = own_of.get(id(member))
            if index is None:
                payload = encoded_common.get(codec)
                if payload is None:
                    payload = encoded_common[codec] = encode(common)
            else:
                block = encoded_own.get(codec)
                if block is None:
                    block = encoded_own[codec] = encode(own)
                payload = block[index * FRAME_SAMPLES:(index + 1) * FRAME_SAMPLES]
            member.audio.send_payload(payload)
            sent.append(member.audio)
        return sent

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
