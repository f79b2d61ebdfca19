"""DTMF: RFC 4733 events from a pjsua2 capture, the sender's packet sequence, the receiver's
de-duplication, and in-band detection (accepted and rejected signals, timing, noise)."""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pbx_services.rtp.dtmf import (
    COLUMN_FREQUENCIES,
    DTMF_EVENTS,
    ROW_FREQUENCIES,
    DtmfPacket,
    DtmfReceiver,
    DtmfSender,
    GoertzelDetector,
    TelephoneEvent,
    event_code,
    generate_dtmf,
)
from pbx_services.rtp.errors import RtpParseError
from pbx_services.rtp.packet import RtpPacket
from pbx_services.rtp.tones import DBM0_PEAK

DATA = Path(__file__).resolve().parents[2] / "data" / "rtp"
RATE = 8000
# pjsua2 sending "1" (200 ms): 9 updates, then the final packet three times.
PJSUA2_DIGIT_1 = [RtpPacket.parse(bytes.fromhex(line))
                  for line in (DATA / "pjsua2_dtmf_1.hex").read_text().split()]


def test_event_codes() -> None:
    assert DTMF_EVENTS == "0123456789*#ABCD"
    assert [event_code(digit) for digit in "09*#AaDd"] == [0, 9, 10, 11, 12, 12, 15, 15]
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError) as caught:
            event_code(bad)
        assert str(caught.value) == f"not a DTMF digit: {bad!r}"


def test_pjsua2_event_packets() -> None:
    events = [TelephoneEvent.parse(packet.payload) for packet in PJSUA2_DIGIT_1]
    assert events[0] == TelephoneEvent(event=1, end=False, volume=10, duration=160)
    assert [event.duration for event in events] == [160 * n for n in range(1, 10)] + [1600] * 3
    assert [event.end for event in events] == [False] * 9 + [True] * 3
    assert [packet.marker for packet in PJSUA2_DIGIT_1] == [True] + [False] * 11
    assert {packet.timestamp for packet in PJSUA2_DIGIT_1} == {0x3F20}
    assert {event.digit for event in events} == {"1"}
    for packet, event in zip(PJSUA2_DIGIT_1, events, strict=True):
        assert event.serialize() == packet.payload


def test_events_other_than_digits() -> None:
    flash = TelephoneEvent.parse(bytes.fromhex("108a0320"))
    assert (flash.event, flash.end, flash.volume, flash.duration, flash.digit) == (16, True, 10, 800, None)


def test_the_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.parse(bytes.fromhex("01ca00a0")) == TelephoneEvent(1, True, 10, 160)


def test_short_payload() -> None:
    with pytest.raises(RtpParseError) as caught:
        TelephoneEvent.parse(b"\x01\x0a\x00")
    assert str(caught.value) == "telephone-event payload is too short: 3 bytes, 4 needed"


@pytest.mark.parametrize(("event", "message"), [
    (TelephoneEvent(256, False, 10, 0), "telephone event 256 is out of range 0..255"),
    (TelephoneEvent(1, False, 64, 0), "telephone-event volume 64 is out of range 0..63"),
    (TelephoneEvent(1, False, 10, 65536), "telephone-event duration 65536 is out of range 0..65535"),
])
def test_serialize_refuses_what_does_not_fit(event: TelephoneEvent, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        event.serialize()
    assert str(caught.value) == message


def drain(sender: DtmfSender) -> list[DtmfPacket]:
    packets = []
    while (packet := sender.tick()) is not None:
        packets.append(packet)
    return packets


def test_sender_follows_rfc_4733() -> None:
    sender = DtmfSender()
    sender.start("5", timestamp=1000, duration_ms=100)
    packets = drain(sender)
    assert [packet.payload.hex() for packet in packets] == [
        "050a00a0", "050a0140", "050a01e0", "050a0280", "058a0320", "058a0320", "058a0320"]
    assert [packet.marker for packet in packets] == [True] + [False] * 6
    assert [packet.end for packet in packets] == [False] * 4 + [True] * 3
    assert {packet.timestamp for packet in packets} == {1000}
    assert sender.tick() is None
    assert not sender.busy


def test_sender_builds_what_pjsua2_sends() -> None:
    sender = DtmfSender()
    sender.start("1", timestamp=0x3F20, duration_ms=200)
    assert [packet.payload for packet in drain(sender)] == [packet.payload for packet in PJSUA2_DIGIT_1]


def test_sender_with_a_duration_that_is_not_whole_packets_and_a_wideband_clock() -> None:
    sender = DtmfSender(clock_rate=16000, volume=7)
    sender.start("#", timestamp=0, duration_ms=50)
    assert [packet.payload.hex() for packet in drain(sender)] == [
        "0b070140", "0b070280", "0b870320", "0b870320", "0b870320"]


def test_sender_refusals() -> None:
    sender = DtmfSender()
    with pytest.raises(ValueError, match=r"^not a DTMF digit: 'x'$"):
        sender.start("x", timestamp=0)
    with pytest.raises(ValueError, match=r"^DTMF duration 9000 ms is out of range for one event$"):
        sender.start("1", timestamp=0, duration_ms=9000)
    sender.start("1", timestamp=0)
    sender.tick()
    with pytest.raises(ValueError, match=r"^a DTMF event is already being sent$"):
        sender.start("2", timestamp=800)


def feed_all(receiver: DtmfReceiver, packets: list[RtpPacket]) -> str:
    return "".join(digit for packet in packets
                   if (digit := receiver.feed(packet.timestamp, packet.payload, packet.marker)) is not None)


def test_receiver_reports_the_pjsua2_digit_once() -> None:
    receiver = DtmfReceiver()
    assert feed_all(receiver, PJSUA2_DIGIT_1) == "1"
    assert receiver.last_event == TelephoneEvent(1, True, 10, 1600)


def test_receiver_survives_lost_start_packets_and_duplicates() -> None:
    assert feed_all(DtmfReceiver(), PJSUA2_DIGIT_1[4:]) == "1"
    assert feed_all(DtmfReceiver(), PJSUA2_DIGIT_1[-1:]) == "1"
    assert feed_all(DtmfReceiver(), PJSUA2_DIGIT_1 + PJSUA2_DIGIT_1) == "1"


def test_receiver_ignores_packets_of_an_earlier_event() -> None:
    receiver = DtmfReceiver()
    first = DtmfSender()
    first.start("7", timestamp=1000)
    first_packets = drain(first)
    second = DtmfSender()
    second.start("7", timestamp=3000)
    second_packets = drain(second)
    digits = [receiver.feed(p.timestamp, p.payload, p.marker) for p in first_packets[:3] + second_packets[:2]]
    late = receiver.feed(first_packets[3].timestamp, first_packets[3].payload, first_packets[3].marker)
    assert (digits, late) == (["7", None, None, "7", None], None)


def test_receiver_across_the_timestamp_wraparound() -> None:
    receiver = DtmfReceiver()
    assert receiver.feed(0xFFFF_FF00, bytes.fromhex("038a0320"), True) == "3"
    assert receiver.feed(0x0000_0100, bytes.fromhex("040a00a0"), True) == "4"
    assert receiver.feed(0xFFFF_FF00, bytes.fromhex("038a0320"), False) is None


def test_receiver_joins_the_segments_of_a_long_event() -> None:
    # RFC 4733 2.5.1.3: a long event goes on in a new segment, with a new timestamp and no marker.
    receiver = DtmfReceiver()
    assert receiver.feed(0, bytes.fromhex("0a0affff"), True) == "*"
    assert receiver.feed(0xFFFF, bytes.fromhex("0a0a00a0"), False) is None
    assert receiver.feed(0xFFFF, bytes.fromhex("0a8a0140"), False) is None


def test_sender_to_receiver() -> None:
    sender, receiver = DtmfSender(), DtmfReceiver()
    digits = []
    timestamp = 0
    for digit in "1234567890*#ABCD":
        sender.start(digit, timestamp)
        for packet in drain(sender):
            if (received := receiver.feed(packet.timestamp, packet.payload, packet.marker)) is not None:
                digits.append(received)
        timestamp += 1600
    assert "".join(digits) == "1234567890*#ABCD"


# In-band detection.

def silence(ms: float) -> npt.NDArray[np.int16]:
    return np.zeros(round(RATE * ms / 1000), dtype=np.int16)


def tones(frequencies: tuple[float, ...], ms: float, levels_dbm0: tuple[float, ...],
          rate: int = RATE) -> npt.NDArray[np.int16]:
    times = np.arange(round(rate * ms / 1000)) / rate
    signal = sum(DBM0_PEAK * 10 ** (level / 20) * np.sin(2 * np.pi * frequency * times)
                 for frequency, level in zip(frequencies, levels_dbm0, strict=True))
    return np.round(signal).astype(np.int16)


def detect(samples: npt.NDArray[np.int16], frame: int = 160, rate: int = RATE) -> str:
    detector = GoertzelDetector(rate)
    return "".join(digit for start in range(0, len(samples), frame)
                   for digit in detector.feed(samples[start:start + frame]))


def test_generated_digits_have_their_row_and_column() -> None:
    spectrum = np.abs(np.fft.rfft(generate_dtmf("9", 1000)))
    assert sorted(np.argsort(spectrum)[-2:].tolist()) == [852, 1477]
    assert len(generate_dtmf("9", 60)) == 480
    assert ROW_FREQUENCIES == (697, 770, 852, 941) and COLUMN_FREQUENCIES == (1209, 1336, 1477, 1633)


def test_every_digit_is_detected_once() -> None:
    signal = np.concatenate([np.concatenate([generate_dtmf(d, 60), silence(60)]) for d in DTMF_EVENTS])
    assert detect(signal) == "0123456789*#ABCD"


@pytest.mark.parametrize("frame", [1, 37, 102, 160, 1000])
def test_any_frame_size(frame: int) -> None:
    signal = np.concatenate([np.concatenate([generate_dtmf(digit, 50), silence(50)]) for digit in "159#"])
    assert detect(signal, frame) == "159#"


@pytest.mark.parametrize("snr_db", [20, 15, 10])
def test_detection_in_white_noise(snr_db: float) -> None:
    rng = np.random.default_rng(snr_db)
    signal = np.concatenate([np.concatenate([generate_dtmf(d, 60), silence(60)]) for d in DTMF_EVENTS])
    tone_power = (DBM0_PEAK * 10 ** (-10 / 20)) ** 2  # two sines of that amplitude
    noise = rng.normal(0, np.sqrt(tone_power / 10 ** (snr_db / 10)), len(signal))
    assert detect(np.round(signal + noise).astype(np.int16)) == "0123456789*#ABCD"


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_tones_of_40_ms_are_detected_wherever_they_start(offset: int) -> None:
    signal = np.concatenate([np.zeros(offset, dtype=np.int16), generate_dtmf("5", 40), silence(100)])
    assert detect(signal) == "5"


@pytest.mark.parametrize("offset", range(0, 102, 7))
def test_tones_of_20_ms_are_not(offset: int) -> None:
    signal = np.concatenate([np.zeros(offset, dtype=np.int16), generate_dtmf("5", 20), silence(100)])
    assert detect(signal) == ""


def test_a_held_key_is_one_digit() -> None:
    assert detect(np.concatenate([generate_dtmf("0", 2000), silence(50)])) == "0"


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_the_same_digit_again_after_a_40_ms_pause(offset: int) -> None:
    signal = np.concatenate([np.zeros(offset, dtype=np.int16), generate_dtmf("5", 60), silence(40),
                             generate_dtmf("5", 60), silence(50)])
    assert detect(signal) == "55"


@pytest.mark.parametrize("offset", range(0, 102, 17))
def test_an_interruption_of_10_ms_is_bridged(offset: int) -> None:
    signal = np.concatenate([np.zeros(offset, dtype=np.int16), generate_dtmf("5", 100), silence(10),
                             generate_dtmf("5", 100), silence(50)])
    assert detect(signal) == "5"


def test_a_different_digit_needs_no_pause() -> None:
    assert detect(np.concatenate([generate_dtmf("1", 60), generate_dtmf("2", 60), silence(50)])) == "12"


@pytest.mark.parametrize(("levels", "detected"), [
    ((-3, -3), "8"),
    ((-28, -28), "8"),
    ((-33, -33), ""),  # below the -30 dBm0 threshold
    ((-10, -16), "8"),  # normal twist (column weaker) of 6 dB
    ((-10, -19), ""),  # 9 dB: more than the 8 dB allowed
    ((-13, -10), "8"),  # reverse twist (row weaker) of 3 dB
    ((-16, -10), ""),  # 6 dB: more than the 4 dB allowed
])
def test_levels_and_twist(levels: tuple[float, float], detected: str) -> None:
    assert detect(np.concatenate([tones((852, 1336), 80, levels), silence(50)])) == detected


@pytest.mark.parametrize(("deviation", "detected"), [(0.015, "8"), (-0.015, "8"), (0.035, ""), (-0.035, "")])
def test_frequency_tolerance_of_itu_q24(deviation: float, detected: str) -> None:
    frequencies = (852 * (1 + deviation), 1336 * (1 + deviation))
    assert detect(np.concatenate([tones(frequencies, 80, (-10, -10)), silence(50)])) == detected


@pytest.mark.parametrize(("harmonic_db", "detected"), [(-20, "8"), (-12, "8"), (-6, "")])
def test_strong_second_harmonics_are_not_dtmf(harmonic_db: float, detected: str) -> None:
    signal = tones((852, 1336, 1704, 2672), 80, (-10, -10, -10 + harmonic_db, -10 + harmonic_db))
    assert detect(np.concatenate([signal, silence(50)])) == detected


def vowel(fundamental: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    """A voiced sound: harmonics of a (possibly gliding) pitch shaped by three formants."""
    phase = 2 * np.pi * np.cumsum(fundamental) / RATE
    signal = np.zeros(len(fundamental))
    for harmonic in range(1, 40):
        frequency = harmonic * fundamental
        amplitude = (np.exp(-((frequency - 700) / 300) ** 2) + 0.6 * np.exp(-((frequency - 1200) / 300) ** 2)
                     + 0.3 * np.exp(-((frequency - 2500) / 400) ** 2)) * (frequency < 3800)
        signal += amplitude * np.sin(harmonic * phase + harmonic)
    return np.round(signal / np.abs(signal).max() * 8000).astype(np.int16)


@pytest.mark.parametrize("pitch", [100, 120, 150, 200, 220, 233, 250])
def test_speech_like_sounds_are_not_dtmf(pitch: float) -> None:
    assert detect(vowel(np.full(2 * RATE, float(pitch)))) == ""


def test_a_pitch_glide_is_not_dtmf() -> None:
    assert detect(vowel(np.linspace(90, 300, 4 * RATE))) == ""


@pytest.mark.parametrize("frequencies", [(852,), (1000,), (1336,), (697, 770), (1209, 1477), (440, 480)])
def test_single_tones_and_pairs_from_one_group_are_not_dtmf(frequencies: tuple[float, ...]) -> None:
    signal = tones(frequencies, 500, (-10,) * len(frequencies))
    assert detect(signal) == ""


def test_noise_alone_is_not_dtmf() -> None:
    rng = np.random.default_rng(3)
    assert detect(np.round(rng.normal(0, 3000, 5 * RATE)).astype(np.int16)) == ""


def test_wideband_audio() -> None:
    signal = np.concatenate([np.concatenate([generate_dtmf(d, 60, 16000), np.zeros(960, np.int16)])
                             for d in "147*"])
    assert detect(signal, frame=320, rate=16000) == "147*"
