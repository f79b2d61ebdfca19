"""The codec registry, each codec on real payloads and tones, and resampling between their rates."""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pbx_services.rtp.codecs import (
    CODECS,
    Codec,
    Resampler,
    available_codecs,
    get_codec,
    resample,
)
from pbx_services.rtp.g711 import alaw_decode, ulaw_decode, ulaw_encode
from pbx_services.rtp.packet import RtpPacket

DATA = Path(__file__).resolve().parents[2] / "data" / "rtp"
PJSUA2_PAYLOAD = RtpPacket.parse(bytes.fromhex((DATA / "pjsua2_pcmu.hex").read_text())).payload


def sine(frequency: float, rate: int, seconds: float = 1.0,
         amplitude: float = 10000) -> npt.NDArray[np.int16]:
    times = np.arange(round(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.int16)


def rms(samples: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def dominant_frequency(samples: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_g711_is_always_there() -> None:
    assert available_codecs()[:2] == ["PCMU", "PCMA"]
    pcmu, pcma = get_codec("PCMU"), get_codec("pcma")
    assert (pcmu.name, pcmu.clock_rate, pcmu.sample_rate, pcmu.static_payload_type, pcmu.channels) == (
        "PCMU", 8000, 8000, 0, 1)
    assert (pcma.name, pcma.static_payload_type, pcma.samples_per_frame, pcma.timestamp_per_frame) == (
        "PCMA", 8, 160, 160)
    assert get_codec("Pcmu").decode(PJSUA2_PAYLOAD).tolist() == ulaw_decode(PJSUA2_PAYLOAD).tolist()
    assert pcma.decode(PJSUA2_PAYLOAD).tolist() == alaw_decode(PJSUA2_PAYLOAD).tolist()
    assert pcmu.encode(pcmu.decode(PJSUA2_PAYLOAD)) == PJSUA2_PAYLOAD


def test_the_registry_describes_codecs_without_an_instance() -> None:
    assert CODECS["PCMU"].static_payload_type == 0
    assert all(issubclass(codec, Codec) for codec in CODECS.values())
    assert [codec.name for codec in CODECS.values()] == available_codecs()


def test_each_call_gives_a_codec_of_its_own() -> None:
    assert get_codec("PCMU") is not get_codec("PCMU")


def test_unknown_codec_is_named() -> None:
    with pytest.raises(KeyError) as caught:
        get_codec("G729")
    assert caught.value.args[0] == f"unknown codec 'G729'; available: {', '.join(available_codecs())}"


def test_g722() -> None:
    pytest.importorskip("G722")
    encoder, decoder = get_codec("g722"), get_codec("G722")
    assert (encoder.name, encoder.clock_rate, encoder.sample_rate, encoder.static_payload_type) == (
        "G722", 8000, 16000, 9)
    assert (encoder.samples_per_frame, encoder.timestamp_per_frame) == (320, 160)
    tone = sine(1000, 16000)
    payloads = [encoder.encode(tone[start:start + 320]) for start in range(0, len(tone), 320)]
    assert {len(payload) for payload in payloads} == {160}  # 64 kbit/s: 4 bits a sample
    decoded = np.concatenate([decoder.decode(payload) for payload in payloads])
    assert decoded.dtype == np.int16 and len(decoded) == len(tone)
    # The codec delays by 22 samples; past the start the tone comes back about 45 dB above the error.
    error = decoded[22 + 160:].astype(np.float64) - tone[160:-22]
    assert 10 * np.log10(np.sum(tone[160:-22].astype(np.float64) ** 2) / np.sum(error ** 2)) > 40


def test_opus() -> None:
    pytest.importorskip("opuslib_next")
    if "opus" not in available_codecs():
        pytest.skip("libopus is not installed")
    encoder, decoder = get_codec("OPUS"), get_codec("opus")
    assert (encoder.name, encoder.clock_rate, encoder.sample_rate, encoder.static_payload_type,
            encoder.channels, encoder.samples_per_frame) == ("opus", 48000, 48000, None, 2, 960)
    tone = sine(1000, 48000)
    decoded = np.concatenate([decoder.decode(encoder.encode(tone[start:start + 960]))
                              for start in range(0, len(tone), 960)])
    assert len(decoded) == len(tone)
    assert dominant_frequency(decoded[4800:], 48000) == pytest.approx(1000, abs=2)
    assert rms(decoded[4800:]) == pytest.approx(rms(tone), rel=0.1)


def test_resample_up_and_down_keeps_a_tone() -> None:
    tone = sine(1000, 8000)
    up = resample(tone, 8000, 16000)
    assert len(up) == 16000
    # Within a fraction of a percent of the ideal 16 kHz tone, edges aside.
    assert np.abs(up[200:-200].astype(int) - sine(1000, 16000)[200:-200]).max() <= 2
    assert np.abs(resample(up, 16000, 8000)[100:-100].astype(int) - tone[100:-100]).max() <= 2


@pytest.mark.parametrize(("frequency", "low", "high"), [
    (1000, 0.999, 1.001), (3000, 0.995, 1.005), (3400, 0.85, 1.0),  # the telephone band passes
    (4500, 0.0, 0.001), (5000, 0.0, 0.001), (7000, 0.0, 0.001),  # above the new Nyquist: removed, not aliased
])
def test_downsampling_filters_what_would_alias(frequency: float, low: float, high: float) -> None:
    tone = sine(frequency, 16000)
    assert low <= rms(resample(tone, 16000, 8000)[200:-200]) / rms(tone) <= high


@pytest.mark.parametrize(("from_rate", "to_rate", "given", "returned"), [
    (8000, 16000, 160, 320), (16000, 8000, 320, 160), (16000, 8000, 161, 81), (8000, 48000, 160, 960),
    (48000, 8000, 160, 27), (44100, 8000, 11, 2), (8000, 8000, 160, 160),
])
def test_resampled_length_is_rounded_up(from_rate: int, to_rate: int, given: int, returned: int) -> None:
    assert len(resample(np.ones(given, dtype=np.int16), from_rate, to_rate)) == returned


def test_a_stream_resampled_frame_by_frame_equals_the_whole_signal_delayed() -> None:
    speech_like = sine(300, 8000, 2) // 2 + sine(1100, 8000, 2) // 3 + sine(2300, 8000, 2) // 4
    whole = resample(speech_like, 8000, 16000)
    resampler = Resampler(8000, 16000)
    framed = np.concatenate([resampler.process(speech_like[start:start + 160])
                             for start in range(0, len(speech_like), 160)])
    assert len(framed) == 32000
    assert resampler.delay == 32
    assert np.array_equal(framed[resampler.delay:], whole[:len(framed) - resampler.delay])


def test_resampler_refuses_bad_rates() -> None:
    with pytest.raises(ValueError, match=r"^cannot resample from 0 Hz to 8000 Hz$"):
        Resampler(0, 8000)


def test_g722_to_g711_transcoding() -> None:
    pytest.importorskip("G722")
    # A PCMU call bridged to a G.722 one: decode, up to 16 kHz, encode; and back.
    narrowband = sine(800, 8000)
    to_wideband, to_narrowband = Resampler(8000, 16000), Resampler(16000, 8000)
    g722_encoder, g722_decoder = get_codec("G722"), get_codec("G722")
    pcmu = get_codec("PCMU")
    returned = []
    for start in range(0, len(narrowband), 160):
        payload = pcmu.encode(narrowband[start:start + 160])
        wideband = to_wideband.process(pcmu.decode(payload))
        g722_payload = g722_encoder.encode(wideband)
        back = to_narrowband.process(g722_decoder.decode(g722_payload))
        returned.append(ulaw_decode(ulaw_encode(back)))
    audio = np.concatenate(returned)
    assert len(audio) == len(narrowband)
    assert dominant_frequency(audio[800:], 8000) == pytest.approx(800, abs=1)
    assert rms(audio[800:]) == pytest.approx(rms(narrowband), rel=0.05)
