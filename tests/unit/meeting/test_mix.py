"""A room's mix, frame by frame, on CallAudio endpoints fed RTP as the media server sends it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pbx_services.meeting.mix import TALK_START, TALK_STOP, VAD_HANGOVER, Member, RoomMix
from pbx_services.rtp.g711 import ulaw_decode, ulaw_encode
from pbx_services.rtp.mixer import LIMIT, conference_mix
from pbx_services.rtp.packet import RtpPacket
from tests.unit.appserver.test_audio import MEDIA_SERVER, call_audio, packets, tone

FRAME = 160


def speak(member: Member, samples: npt.NDArray[np.int16], sequence: int = 1) -> None:
    """One 20 ms PCMU packet from `member`'s phone (through the media server)."""
    packet = RtpPacket(payload_type=0, sequence_number=sequence, timestamp=sequence * FRAME, ssrc=7,
                       payload=ulaw_encode(samples))
    member.audio.receive(packet.serialize(), MEDIA_SERVER, 1.0)


def heard(member: Member) -> npt.NDArray[np.int16]:
    [packet] = packets(member.audio)
    return ulaw_decode(packet.payload)


def amplitude(samples: npt.NDArray[np.int16], frequency: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) / (np.hanning(len(samples)).sum() / 2)
    return float(spectrum[round(frequency * len(samples) / 8000)])


def room(count: int) -> tuple[RoomMix, list[Member]]:
    mix = RoomMix()
    members = [Member(name=str(i), audio=call_audio()) for i in range(count)]
    for member in members:
        mix.add(member)
    return mix, members


def test_each_member_hears_the_others_and_not_itself() -> None:
    mix, (a, b, c) = room(3)
    speak(a, tone(FRAME, 500))
    speak(b, tone(FRAME, 1500))
    sent, _ = mix.tick()
    assert len(sent) == 3
    to_a, to_b, to_c = heard(a), heard(b), heard(c)
    assert amplitude(to_a, 1500) > 3000 and amplitude(to_a, 500) < 100
    assert amplitude(to_b, 500) > 3000 and amplitude(to_b, 1500) < 100
    assert amplitude(to_c, 500) > 3000 and amplitude(to_c, 1500) > 3000


def test_silence_is_sent_when_nobody_talks_and_quiet_frames_are_not_mixed() -> None:
    mix, (a, b) = room(2)
    speak(a, (tone(FRAME) // 200).astype(np.int16))  # background noise, under the voice level
    mix.tick()
    assert np.abs(heard(b)).max() <= 2 and np.abs(heard(a)).max() <= 2


def test_a_talker_stays_in_the_mix_for_the_hangover_then_leaves_it() -> None:
    mix, (a, b) = room(2)
    speak(a, tone(FRAME))
    mix.tick()
    assert np.abs(heard(b)).max() > 1000
    heard(a)
    quiet = (tone(FRAME) // 100).astype(np.int16)
    for frame in range(VAD_HANGOVER):
        speak(a, quiet, frame + 2)
        mix.tick()
        assert np.abs(heard(b)).max() > 0  # the tail of the word, still mixed
        heard(a)
    speak(a, quiet, 99)
    mix.tick()
    assert np.abs(heard(b)).max() <= 2


def test_a_muted_member_hears_and_is_not_heard() -> None:
    mix, (a, b) = room(2)
    a.muted = True
    speak(a, tone(FRAME, 500))
    speak(b, tone(FRAME, 1500))
    mix.tick()
    assert amplitude(heard(b), 500) < 100
    assert amplitude(heard(a), 1500) > 3000


def test_talkers_are_levelled_towards_one_another() -> None:
    mix, (loud, quiet, listener) = room(3)
    for frame in range(100):
        speak(loud, tone(FRAME, 500, amplitude=20000), frame)
        speak(quiet, tone(FRAME, 1500, amplitude=1000), frame)
        mix.tick()
        for member in (loud, quiet, listener):
            heard(member)
    speak(loud, tone(FRAME, 500, amplitude=20000), 100)
    speak(quiet, tone(FRAME, 1500, amplitude=1000), 100)
    mix.tick()
    to_listener = heard(listener)
    ratio = amplitude(to_listener, 500) / amplitude(to_listener, 1500)
    assert ratio < 5, ratio  # sent 20 to 1


def test_many_loud_talkers_are_limited_not_clipped() -> None:
    frames = np.full((10, FRAME), 20000, dtype=np.float32)
    common, own, gain = conference_mix(frames, 1.0)
    assert common.max() <= LIMIT and own.max() <= LIMIT
    assert gain < 1
    quiet = np.full((1, FRAME), 100, dtype=np.float32)
    _, _, later = conference_mix(quiet, gain)
    assert gain < later <= 1  # and it comes back slowly


def test_talker_changes_are_reported_once_each_way() -> None:
    mix, (a, b) = room(2)
    changes = []
    for frame in range(TALK_START):
        speak(a, tone(FRAME), frame)
        changes += mix.tick()[1]
    assert [(c.member, c.talking) for c in changes] == [(a, True)]
    changes = []
    for _ in range(TALK_STOP + 5):
        changes += mix.tick()[1]
    assert [(c.member, c.talking) for c in changes] == [(a, False)]
