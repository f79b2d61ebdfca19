"""One call's audio at an application server: the answer to the Call Manager's offer, prompts
sent as RTP paced by the clock, digits and audio received.

Offers are the phones' captures in tests/data/sdp/ (what reaches an application server is
the media server's rewrite of such an offer, with the same codecs) and a few written here.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pbx_services.appserver.audio import (
    FRAME_SAMPLES,
    MAX_LATE_FRAMES,
    CallAudio,
    EncodedPrompts,
    Negotiated,
    NegotiationFailed,
    answer_sdp,
    negotiate,
)
from pbx_services.rtp.codecs import Resampler, get_codec
from pbx_services.rtp.dtmf import DtmfSender, generate_dtmf
from pbx_services.rtp.g711 import alaw_encode, ulaw_decode, ulaw_encode
from pbx_services.rtp.packet import RtpPacket
from pbx_services.rtp.wav import read_wav
from pbx_services.sip.sdp import Origin

DATA = Path(__file__).resolve().parents[2] / "data"
PJSUA2_OFFER = (DATA / "sdp" / "pjsua2_2.15_offer.sdp").read_bytes()
PJSUA2_G722_OFFER = (DATA / "sdp" / "pjsua2_2.15_g722_offer.sdp").read_bytes()
LINPHONE_OFFER = (DATA / "sdp" / "linphone_offer.sdp").read_bytes()
POLYCOM_HOLD = (DATA / "sdp" / "polycom_vvx_hold.sdp").read_bytes()
BARESIP_OPUS_OFFER = (DATA / "sdp" / "baresip_1.0_opus_offer.sdp").read_bytes()
# pjsua2 sending "1" as RFC 4733 events (payload type 101): 9 updates, the end packet three times.
PJSUA2_DIGIT_1 = [bytes.fromhex(line) for line in (DATA / "rtp" / "pjsua2_dtmf_1.hex").read_text().split()]
INVALID_RTP = sorted((DATA / "rtp" / "invalid").glob("rtp_*.hex"))

MEDIA_SERVER = ("192.0.2.50", 30000)
"""Where the Call Manager's media server wants our audio (the offer's c= and m= port)."""
OUR_ADDRESS = "192.0.2.80"
OUR_PORT = 40000
ORIGIN = Origin("pbx", "7", "1", "IN", "IP4", OUR_ADDRESS)
START = 1000.0
FRAME = 0.02


def offer(formats: str, *attributes: str, address: str = "192.0.2.50", port: int = 30000,
          session: str = "") -> bytes:
    """A media server's offer of one audio stream."""
    lines = ["v=0", "o=- 11 1 IN IP4 192.0.2.50", "s=-", f"c=IN IP4 {address}", "t=0 0",
             *filter(None, [session]), f"m=audio {port} RTP/AVP {formats}",
             *[f"a={attribute}" for attribute in attributes]]
    return ("\r\n".join(lines) + "\r\n").encode()


PCMU_PCMA_OFFER = offer("0 8 101", "rtpmap:0 PCMU/8000", "rtpmap:8 PCMA/8000",
                        "rtpmap:101 telephone-event/8000", "fmtp:101 0-16", "sendrecv")


def negotiated(body: bytes) -> Negotiated:
    return negotiate(body)[0]


def call_audio(body: bytes = PCMU_PCMA_OFFER, *, prompts: EncodedPrompts | None = None) -> CallAudio:
    audio = CallAudio(port=OUR_PORT, prompts=prompts or EncodedPrompts(), now=START)
    audio.use(negotiated(body))
    return audio


def tone(samples: int, frequency: float = 440.0, amplitude: float = 8000.0) -> npt.NDArray[np.int16]:
    return np.round(amplitude * np.sin(2 * math.pi * frequency * np.arange(samples) / 8000)).astype(np.int16)


def packets(audio: CallAudio) -> list[RtpPacket]:
    """What the call sent since the last look, from our port to the media server."""
    out = []
    for port, data, destination in audio.take_datagrams():
        assert port == OUR_PORT
        assert destination == MEDIA_SERVER
        out.append(RtpPacket.parse(data))
    return out


def play_to_the_end(audio: CallAudio, start: float = START, limit: int = 1000) -> list[RtpPacket]:
    """Tick every 20 ms from `start` (the instant of `play`) until the prompts are played."""
    sent: list[RtpPacket] = []
    for k in range(limit):
        audio.tick(start + k * FRAME)
        sent += packets(audio)
        if not audio.playing:
            return sent
    raise AssertionError("still playing")


def rtp(payload: bytes, *, payload_type: int = 0, sequence: int = 1, timestamp: int = 0,
        marker: bool = False) -> bytes:
    return RtpPacket(payload_type=payload_type, sequence_number=sequence & 0xFFFF, timestamp=timestamp,
                     ssrc=0x5EED, marker=marker, payload=payload).serialize()


Encoder = Callable[[npt.NDArray[np.int16]], bytes]


def receive_audio(audio: CallAudio, samples: npt.NDArray[np.int16], *, encode: Encoder = ulaw_encode,
                  payload_type: int = 0, now: float = START) -> None:
    """`samples` (8 kHz) as 20 ms G.711 packets from the media server."""
    for index, offset in enumerate(range(0, len(samples), FRAME_SAMPLES)):
        payload = encode(samples[offset:offset + FRAME_SAMPLES])
        audio.receive(rtp(payload, payload_type=payload_type, sequence=index, timestamp=offset), MEDIA_SERVER,
                      now + index * FRAME)


# -- negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("formats", "attributes", "codec", "payload_type"), [
    ("9 8 0", (), "PCMU", 0),
    ("9 8", (), "PCMA", 8),
    ("9", (), "G722", 9),
    ("18 9 3", (), "G722", 9),
    # Dynamic numbers for static codecs are kept as offered.
    ("96 97 98", ("rtpmap:96 G722/8000", "rtpmap:97 PCMA/8000", "rtpmap:98 PCMU/8000"), "PCMU", 98),
    ("96 97", ("rtpmap:96 G722/8000", "rtpmap:97 PCMA/8000"), "PCMA", 97),
])
def test_the_answer_takes_pcmu_before_pcma_before_g722_whatever_the_offers_order(
        formats: str, attributes: tuple[str, ...], codec: str, payload_type: int) -> None:
    taken, media = negotiate(offer(formats, *attributes))

    assert (taken.codec, taken.payload_type, taken.clock_rate) == (codec, payload_type, 8000)
    assert media.formats == formats.split()


def test_a_pjsua2_offer_is_answered_with_its_own_payload_numbers_and_8khz_telephone_event() -> None:
    taken, media = negotiate(PJSUA2_OFFER)

    assert taken == Negotiated(codec="PCMU", payload_type=0, clock_rate=8000, event_payload_type=102,
                               remote=("192.168.1.20", 4000), sending=True)
    assert answer_sdp(taken, media, address=OUR_ADDRESS, port=OUR_PORT, origin=ORIGIN) == (
        b"v=0\r\n"
        b"o=pbx 7 1 IN IP4 192.0.2.80\r\n"
        b"s=pbx\r\n"
        b"c=IN IP4 192.0.2.80\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 102\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:102 telephone-event/8000\r\n"
        b"a=fmtp:102 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n")


def test_a_g722_offer_is_answered_in_g722_with_its_fmtp_and_telephone_event() -> None:
    with_fmtp = offer("9 120", "rtpmap:9 G722/8000", "fmtp:9 bitrate=64000",
                      "rtpmap:120 telephone-event/8000")
    taken, media = negotiate(with_fmtp)

    assert (taken.codec, taken.payload_type, taken.event_payload_type) == ("G722", 9, 120)
    answer = answer_sdp(taken, media, address=OUR_ADDRESS, port=OUR_PORT, origin=ORIGIN)
    assert answer.split(b"t=0 0\r\n")[1] == (
        b"m=audio 40000 RTP/AVP 9 120\r\n"
        b"a=rtpmap:9 G722/8000\r\n"
        b"a=fmtp:9 bitrate=64000\r\n"
        b"a=rtpmap:120 telephone-event/8000\r\n"
        b"a=fmtp:120 0-16\r\n"
        b"a=ptime:20\r\n"
        b"a=sendrecv\r\n")
    assert negotiated(PJSUA2_G722_OFFER).codec == "G722"


def test_telephone_event_is_left_out_when_not_offered_at_8khz() -> None:
    taken, media = negotiate(offer("0 101", "rtpmap:101 telephone-event/48000"))

    assert taken.event_payload_type is None
    answer = answer_sdp(taken, media, address=OUR_ADDRESS, port=OUR_PORT, origin=ORIGIN)
    assert b"m=audio 40000 RTP/AVP 0\r\n" in answer
    assert b"telephone-event" not in answer
    assert negotiated(offer("0")).event_payload_type is None


def test_the_first_usable_audio_stream_is_taken() -> None:
    # linphone: audio then video; the audio's 8 kHz telephone-event is 100.
    assert negotiated(LINPHONE_OFFER) == Negotiated(codec="PCMU", payload_type=0, clock_rate=8000,
                                                    event_payload_type=100, remote=("192.168.1.40", 7078),
                                                    sending=True)
    two_streams = offer("0") + b"m=audio 30002 RTP/AVP 8\r\n"
    disabled_first = two_streams.replace(b"m=audio 30000", b"m=audio 0")
    taken = negotiated(disabled_first)
    assert (taken.codec, taken.remote) == ("PCMA", ("192.0.2.50", 30002))
    not_ours_first = offer("18") + b"m=audio 30002 RTP/AVP 8\r\n"
    assert negotiated(not_ours_first).remote == ("192.0.2.50", 30002)


@pytest.mark.parametrize("body", [
    BARESIP_OPUS_OFFER,  # only Opus: the media server's offers always carry G.711
    offer("18 3", "rtpmap:18 G729/8000"),
    offer("0").replace(b"m=audio 30000", b"m=audio 0"),
    offer("0").replace(b"m=audio 30000 RTP/AVP 0", b"m=video 30000 RTP/AVP 0"),
    offer("0").replace(b"RTP/AVP", b"udptl"),
], ids=["opus-only", "g729", "port-0", "video", "t38"])
def test_an_offer_without_a_usable_audio_stream_is_refused_with_488(body: bytes) -> None:
    with pytest.raises(NegotiationFailed) as refused:
        negotiate(body)

    assert refused.value.status_code == 488
    assert refused.value.reason == "no audio stream with a codec we take (PCMU, PCMA, G722)"


@pytest.mark.parametrize(("body", "sending"), [
    (offer("0", "sendrecv"), True),
    (offer("0"), True),
    (offer("0", "recvonly"), True),
    (offer("0", "sendonly"), False),
    (offer("0", "inactive"), False),
    (offer("0", session="a=sendonly"), False),
    (POLYCOM_HOLD, False),  # a=sendonly at the session level
])
def test_hold_is_read_from_the_offers_direction(body: bytes, sending: bool) -> None:
    assert negotiated(body).sending is sending


@pytest.mark.parametrize(("direction", "answered"), [
    ("sendonly", b"a=recvonly"), ("inactive", b"a=inactive"), ("recvonly", b"a=sendonly")])
def test_the_answer_to_a_hold_offer_mirrors_its_direction(direction: str, answered: bytes) -> None:
    taken, media = negotiate(offer("0", direction))

    answer = answer_sdp(taken, media, address=OUR_ADDRESS, port=OUR_PORT, origin=ORIGIN)
    assert answer.endswith(answered + b"\r\n")


# -- playing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 159, 160, 161, 1000, 1600, 8001])
def test_a_prompt_of_n_samples_is_ceil_n_over_160_packets(length: int) -> None:
    audio = call_audio()
    audio.play([tone(length)], START)

    sent = play_to_the_end(audio)

    assert len(sent) == math.ceil(length / FRAME_SAMPLES)
    assert all(len(packet.payload) == FRAME_SAMPLES for packet in sent)


def test_frames_are_consecutive_with_a_marker_on_the_first() -> None:
    audio = call_audio()
    prompt = tone(1000)
    audio.play([prompt], START)

    sent = play_to_the_end(audio)

    first = sent[0]
    count = len(sent)
    assert [p.sequence_number for p in sent] == [(first.sequence_number + i) & 0xFFFF for i in range(count)]
    assert [p.timestamp for p in sent] == [(first.timestamp + 160 * i) & 0xFFFFFFFF for i in range(count)]
    assert [p.marker for p in sent] == [True] + [False] * (len(sent) - 1)
    assert {p.ssrc for p in sent} == {first.ssrc}
    assert {p.payload_type for p in sent} == {0}
    # The G.711 payloads are the prompt's samples, the last frame filled up to 20 ms.
    assert b"".join(p.payload for p in sent)[:1000] == ulaw_encode(prompt)


def test_the_next_prompt_marks_its_first_frame_and_goes_on_with_the_stream() -> None:
    audio = call_audio()
    audio.play([tone(320)], START)
    first = play_to_the_end(audio)

    audio.play([tone(320)], START + 1)
    second = play_to_the_end(audio, START + 1)

    assert [p.marker for p in second] == [True, False]
    assert second[0].sequence_number == (first[-1].sequence_number + 1) & 0xFFFF
    assert second[0].ssrc == first[0].ssrc
    assert (second[0].timestamp - first[-1].timestamp) % (1 << 32) >= 160


def test_frames_are_paced_by_the_clock_none_early() -> None:
    audio = call_audio()
    audio.play([tone(160 * 10)], START)
    sent_by: list[int] = []
    count = 0

    for millisecond in range(0, 200):
        audio.tick(START + millisecond / 1000)
        count += len(packets(audio))
        sent_by.append(count)

    # Frame k is due at START + 20 k ms: never before, and on the first tick at or after it.
    assert sent_by == [min(10, millisecond // 20 + 1) for millisecond in range(0, 200)]


def test_a_frame_due_exactly_at_a_tick_is_sent_at_that_tick() -> None:
    # The worker's ticks come every 20 ms, and a prompt that follows another starts at a tick.
    for start in (START, 123456.78, 9_876_543.21):
        audio = call_audio()
        audio.play([tone(160 * 50)], start)
        per_tick = []
        for k in range(50):
            audio.tick(start + k * FRAME)
            per_tick.append(len(packets(audio)))
        assert per_tick == [1] * 50, start


def test_after_a_late_tick_at_most_max_late_frames_catch_up() -> None:
    audio = call_audio()
    audio.play([tone(160 * 40)], START)
    audio.tick(START)
    assert len(packets(audio)) == 1

    audio.tick(START + MAX_LATE_FRAMES * FRAME + 0.001)  # frames 1..5 are due: all go now
    assert len(packets(audio)) == MAX_LATE_FRAMES
    audio.tick(START + (MAX_LATE_FRAMES + 1) * FRAME + 0.001)
    assert len(packets(audio)) == 1

    stall = START + 0.5  # 18 frames late: one now, and the prompt goes on from here
    audio.tick(stall)
    assert len(packets(audio)) == 1
    audio.tick(stall + FRAME / 2)
    assert packets(audio) == []
    audio.tick(stall + FRAME + 0.001)
    assert len(packets(audio)) == 1


def test_finished_playing_is_set_when_the_last_queued_prompt_ends() -> None:
    audio = call_audio()
    audio.play([tone(200), tone(100), np.zeros(0, np.int16), tone(161)], START)
    assert audio.playing and not audio.finished_playing

    sent = play_to_the_end(audio)

    # Each prompt starts on a frame of its own; an empty one is skipped.
    assert len(sent) == 2 + 1 + 2
    assert audio.finished_playing and not audio.playing
    audio.tick(START + 10)
    assert packets(audio) == []


def test_playing_replaces_what_plays() -> None:
    audio = call_audio()
    audio.play([tone(160 * 10, 440)], START)
    audio.tick(START)
    packets(audio)

    second = tone(320, 1000)
    audio.play([second], START + 0.03)
    sent = play_to_the_end(audio, START + 0.03)

    assert b"".join(p.payload for p in sent) == ulaw_encode(second)
    assert sent[0].marker


def test_stop_ends_the_prompt_without_finishing_it() -> None:
    audio = call_audio()
    audio.play([tone(160 * 10)], START)
    audio.tick(START)
    packets(audio)

    audio.stop()

    assert not audio.playing and not audio.finished_playing
    audio.tick(START + 1)
    assert packets(audio) == []


def test_nothing_is_sent_while_the_other_side_holds_but_the_prompt_goes_on() -> None:
    audio = call_audio(offer("0", "sendonly"))
    audio.play([tone(800)], START)

    assert play_to_the_end(audio) == []
    assert audio.finished_playing


def test_g711_prompts_are_encoded_once_and_shared_by_the_calls_playing_them() -> None:
    prompts = EncodedPrompts()
    greeting = tone(480)
    pcmu = [call_audio(prompts=prompts), call_audio(prompts=prompts)]
    pcma = call_audio(offer("8"), prompts=prompts)

    assert prompts.get(greeting, "PCMU") is prompts.get(greeting, "PCMU")
    assert prompts.get(greeting, "PCMA") == alaw_encode(greeting)
    assert prompts.get(greeting, "G722") is None
    sent = []
    for audio in (*pcmu, pcma):
        audio.play([greeting], START)
        sent.append(b"".join(p.payload for p in play_to_the_end(audio)))
    assert sent == [ulaw_encode(greeting), ulaw_encode(greeting), alaw_encode(greeting)]


def test_a_prompts_encodings_go_with_its_array() -> None:
    """The catalogue hands out a new array when a prompt changes: the old one's encodings
    must not stay behind (a worker would keep one per reload)."""
    prompts = EncodedPrompts()
    greeting = tone(480)
    prompts.get(greeting, "PCMU")
    prompts.get(greeting, "PCMA")
    assert len(prompts) == 2

    del greeting
    gc.collect()

    assert len(prompts) == 0


def test_symmetric_rtp_prompts_go_where_the_callers_packets_come_from() -> None:
    audio = call_audio()
    audio.receive(rtp(ulaw_encode(np.zeros(160, np.int16))), ("198.51.100.9", 31000), START)
    audio.play([tone(160)], START)

    audio.tick(START)

    [(port, data, destination)] = audio.take_datagrams()
    assert (port, destination) == (OUR_PORT, ("198.51.100.9", 31000))
    assert RtpPacket.parse(data).payload_type == 0


def test_a_codec_change_mid_prompt_sends_the_rest_in_the_new_codec() -> None:
    audio = call_audio()
    prompt = tone(160 * 4)
    audio.play([prompt], START)
    audio.tick(START)
    assert [p.payload_type for p in packets(audio)] == [0]

    audio.use(negotiated(offer("8")))  # a re-INVITE moved the call to a media server without PCMU
    rest = play_to_the_end(audio, START + FRAME)

    assert {p.payload_type for p in rest} == {8}
    assert b"".join(p.payload for p in rest) == alaw_encode(prompt[160:])


# -- receiving -------------------------------------------------------------------------------------


def test_a_pjsua2_rfc4733_digit_counts_once() -> None:
    audio = call_audio(PJSUA2_OFFER.replace(b"telephone-event/48000", b"telephone-event/8000"))
    assert audio.negotiated is not None and audio.negotiated.event_payload_type == 101

    for index, data in enumerate(PJSUA2_DIGIT_1):
        audio.receive(data, MEDIA_SERVER, START + index * FRAME)

    assert audio.take_digits() == ["1"]
    assert audio.take_digits() == []


def test_rfc4733_digits_each_count_once_even_repeated() -> None:
    audio = call_audio()
    sender = DtmfSender()
    sequence = 0
    timestamp = 8000
    for digit in "1#1*":
        sender.start(digit, timestamp, duration_ms=100)
        while (packet := sender.tick()) is not None:
            audio.receive(rtp(packet.payload, payload_type=101, sequence=sequence, timestamp=packet.timestamp,
                              marker=packet.marker), MEDIA_SERVER, START + sequence * FRAME)
            sequence += 1
        timestamp += 1600

    assert audio.take_digits() == ["1", "#", "1", "*"]


def test_telephone_events_of_another_payload_type_are_not_digits() -> None:
    audio = call_audio(offer("0"))  # no telephone-event negotiated
    sender = DtmfSender()
    sender.start("5", 0)
    while (packet := sender.tick()) is not None:
        audio.receive(rtp(packet.payload, payload_type=101, timestamp=packet.timestamp), MEDIA_SERVER, START)

    assert audio.take_digits() == []


@pytest.mark.parametrize(("codec_offer", "encode", "payload_type"), [
    (PCMU_PCMA_OFFER, ulaw_encode, 0),
    (offer("8"), alaw_encode, 8),
])
def test_in_band_digits_are_detected(codec_offer: bytes, encode: Encoder, payload_type: int) -> None:
    audio = call_audio(codec_offer)
    silence = np.zeros(400, np.int16)
    signal = np.concatenate([silence, generate_dtmf("5", 80), silence, generate_dtmf("0", 80), silence,
                             generate_dtmf("0", 80), silence, tone(1600)])

    receive_audio(audio, signal, encode=encode, payload_type=payload_type)

    assert audio.take_digits() == ["5", "0", "0"]


def test_a_g722_call_encodes_and_decodes_through_the_resamplers() -> None:
    audio = call_audio(PJSUA2_G722_OFFER)
    prompt = tone(1600, 440)
    audio.play([prompt], START)
    sent: list[RtpPacket] = []
    for k in range(20):
        audio.tick(START + k * FRAME)
        sent += [RtpPacket.parse(data) for _, data, _ in audio.take_datagrams()]

    assert len(sent) == 10
    assert {p.payload_type for p in sent} == {9}
    assert {len(p.payload) for p in sent} == {160}  # 320 samples at 16 kHz, 4 bits each
    assert [p.timestamp - sent[0].timestamp for p in sent] == [160 * i for i in range(10)]  # 8 kHz clock
    decoder, down = get_codec("G722"), Resampler(16000, 8000)
    heard = np.concatenate([down.process(decoder.decode(p.payload)) for p in sent])
    assert len(heard) == 1600
    best = max(np.corrcoef(heard[200 + lag:1400 + lag], prompt[200:1400])[0, 1] for lag in range(40))
    assert best > 0.98

    # What the caller sends in G.722 is decoded to 8 kHz: its in-band digits are heard.
    encoder, up = get_codec("G722"), Resampler(8000, 16000)
    signal = np.concatenate([np.zeros(800, np.int16), generate_dtmf("7", 100), np.zeros(800, np.int16)])
    receive_audio(audio, signal, encode=lambda frame: encoder.encode(up.process(frame)), payload_type=9)
    assert audio.take_digits() == ["7"]


@pytest.mark.parametrize("data", [
    b"", b"\x80", b"\x00" * 11, b"not rtp at all",
    *[bytes.fromhex(path.read_text().split()[0]) for path in INVALID_RTP],
], ids=["empty", "one-byte", "short-header", "text", *[p.stem for p in INVALID_RTP]])
def test_datagrams_that_are_not_rtp_are_ignored(data: bytes) -> None:
    audio = call_audio()

    audio.receive(data, ("203.0.113.66", 9), START + 5)

    assert (audio.packets_in, audio.source, audio.last_received, audio.take_digits()) == (0, None, START, [])
    audio.play([tone(160)], START + 6)
    audio.tick(START + 6)
    assert [destination for _, _, destination in audio.take_datagrams()] == [MEDIA_SERVER]


@pytest.mark.parametrize("data", [
    rtp(b"\x01\x0a", payload_type=101, marker=True),  # a telephone-event shorter than its 4 bytes
    rtp(b"\xff" * 160, payload_type=18),  # a codec not negotiated
    rtp(b"", payload_type=0),
], ids=["short-event", "other-codec", "empty-payload"])
def test_rtp_that_carries_nothing_usable_is_ignored(data: bytes) -> None:
    audio = call_audio()

    audio.receive(data, MEDIA_SERVER, START + 5)

    assert audio.take_digits() == []
    audio.play([tone(160)], START + 6)
    audio.tick(START + 6)
    assert len(audio.take_datagrams()) == 1


def test_nothing_is_received_before_negotiation() -> None:
    audio = CallAudio(port=OUR_PORT, prompts=EncodedPrompts(), now=START)

    audio.receive(rtp(ulaw_encode(generate_dtmf("1", 160))), MEDIA_SERVER, START)

    assert (audio.packets_in, audio.source, audio.take_digits()) == (0, None, [])


def test_receiving_latches_the_source_and_the_time() -> None:
    audio = call_audio()

    audio.receive(rtp(ulaw_encode(tone(160))), ("198.51.100.9", 31000), START + 3)

    assert (audio.packets_in, audio.bytes_in, audio.source, audio.last_received) == (
        1, 12 + 160, ("198.51.100.9", 31000), START + 3)


def test_a_recording_is_a_wav_of_what_was_received(tmp_path: Path) -> None:
    audio = call_audio()
    said = tone(800, 300)
    receive_audio(audio, tone(160, 1000))  # before the recording: not in it
    path = tmp_path / "message.wav"

    audio.record(path)
    receive_audio(audio, said)
    audio.stop_recording()
    receive_audio(audio, tone(160, 1000))  # after it: not in it either

    recorded = read_wav(path)
    assert (recorded.sample_rate, recorded.channels) == (8000, 1)
    assert np.array_equal(recorded.samples, ulaw_decode(ulaw_encode(said)))


def test_a_g722_recording_is_at_8khz(tmp_path: Path) -> None:
    audio = call_audio(PJSUA2_G722_OFFER)
    encoder, up = get_codec("G722"), Resampler(8000, 16000)
    path = tmp_path / "g722.wav"

    audio.record(path)
    receive_audio(audio, tone(1600, 300), encode=lambda frame: encoder.encode(up.process(frame)),
                  payload_type=9)
    audio.close()

    recorded = read_wav(path)
    assert (recorded.sample_rate, len(recorded.samples)) == (8000, 1600)
