"""WAV files built here byte by byte, in every format a prompt may come in, and broken ones."""

import struct

import numpy as np
import numpy.typing as npt
import pytest

from pbx_services.cluster.audio_import import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_EXTENSIBLE,
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    import_wav,
)
from pbx_services.cluster.validation import InvalidValue
from pbx_services.rtp.g711 import alaw_encode, ulaw_encode

SUBFORMAT_TAIL = bytes.fromhex("000000001000800000aa00389b71")
AMPLITUDE = 10000


def tone(frequency: float, rate: int, seconds: float = 1.0,
         amplitude: float = AMPLITUDE) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)


def encode(samples: npt.NDArray[np.float64], format_tag: int, bits: int) -> bytes:
    """Samples on the int16 scale as the sample bytes of one channel."""
    whole = np.round(samples).astype(np.int64)
    if format_tag == WAVE_FORMAT_MULAW:
        return ulaw_encode(whole.astype(np.int16))
    if format_tag == WAVE_FORMAT_ALAW:
        return alaw_encode(whole.astype(np.int16))
    if format_tag == WAVE_FORMAT_IEEE_FLOAT:
        return (samples / 32768).astype(f"<f{bits // 8}").tobytes()
    if bits == 8:
        return (np.round(samples / 256) + 128).astype(np.uint8).tobytes()
    if bits == 24:
        return b"".join(int(value * 256).to_bytes(3, "little", signed=True) for value in whole)
    return (whole << (bits - 16)).astype(f"<i{bits // 8}").tobytes()


def interleave(channels: list[bytes], width: int) -> bytes:
    frames = [np.frombuffer(channel, dtype=np.uint8).reshape(-1, width) for channel in channels]
    return np.concatenate(frames, axis=1).tobytes() if frames else b""


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    return struct.pack("<4sI", chunk_id, len(body)) + body + b"\0" * (len(body) % 2)


def fmt_body(format_tag: int, channels: int, rate: int, bits: int, *, extensible: bool = False,
             block_align: int | None = None) -> bytes:
    align = block_align if block_align is not None else channels * ((bits + 7) // 8)
    tag = WAVE_FORMAT_EXTENSIBLE if extensible else format_tag
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if extensible:
        body += struct.pack("<HHI16s", 22, bits, 0, format_tag.to_bytes(2, "little") + SUBFORMAT_TAIL)
    return body


def wav(format_tag: int, channels: list[bytes] | bytes, rate: int, bits: int, *, extensible: bool = False,
        before: bytes = b"", after: bytes = b"", block_align: int | None = None) -> bytes:
    """A WAV file; `before` and `after` are chunks around fmt and data."""
    parts = [channels] if isinstance(channels, bytes) else channels
    payload = interleave(parts, (bits + 7) // 8)
    fmt = fmt_body(format_tag, len(parts), rate, bits, extensible=extensible, block_align=block_align)
    body = b"WAVE" + before + chunk(b"fmt ", fmt) + chunk(b"data", payload) + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


def peak_frequency(samples: npt.NDArray[np.int16], rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def rms(samples: npt.NDArray[np.int16]) -> float:
    # The filter's edges left out.
    middle = samples[len(samples) // 10: -len(samples) // 10].astype(np.float64)
    return float(np.sqrt(np.mean(middle ** 2)))


FORMATS = [
    pytest.param(WAVE_FORMAT_PCM, 8, 300, id="pcm8"),
    pytest.param(WAVE_FORMAT_PCM, 16, 1, id="pcm16"),
    pytest.param(WAVE_FORMAT_PCM, 24, 1, id="pcm24"),
    pytest.param(WAVE_FORMAT_PCM, 32, 1, id="pcm32"),
    pytest.param(WAVE_FORMAT_IEEE_FLOAT, 32, 1, id="float32"),
    pytest.param(WAVE_FORMAT_IEEE_FLOAT, 64, 1, id="float64"),
    pytest.param(WAVE_FORMAT_MULAW, 8, 700, id="ulaw"),
    pytest.param(WAVE_FORMAT_ALAW, 8, 700, id="alaw"),
]


@pytest.mark.parametrize("extensible", [False, True], ids=["plain", "extensible"])
@pytest.mark.parametrize(("format_tag", "bits", "tolerance"), FORMATS)
def test_every_format_at_8000_hz_is_read_as_is(format_tag: int, bits: int, tolerance: int,
                                                extensible: bool) -> None:
    signal = tone(1000, 8000, 0.1)

    samples = import_wav(wav(format_tag, encode(signal, format_tag, bits), 8000, bits, extensible=extensible),
                         "tone.wav")

    assert samples.dtype == np.int16
    assert len(samples) == 800
    assert np.max(np.abs(samples - signal)) <= tolerance  # the format's own quantization


@pytest.mark.parametrize(("format_tag", "bits", "tolerance"), FORMATS)
@pytest.mark.parametrize("rate", [11025, 16000, 22050, 44100, 48000, 96000, 192000])
def test_resampled_tone_keeps_its_frequency_and_level(format_tag: int, bits: int, tolerance: int,
                                                      rate: int) -> None:
    signal = tone(1000, rate)

    samples = import_wav(wav(format_tag, encode(signal, format_tag, bits), rate, bits), "tone.wav")

    assert len(samples) == 8000
    assert peak_frequency(samples) == pytest.approx(1000, abs=1)
    assert rms(samples) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_what_8000_hz_cannot_carry_is_filtered_out_not_folded_back(rate: int) -> None:
    # 5 kHz is above 4 kHz, the Nyquist frequency at 8000 Hz: decimating without a low-pass
    # would fold it down to 3 kHz (or 3.75 kHz at 44100), as loud as it was.
    signal = tone(5000, rate)

    samples = import_wav(wav(WAVE_FORMAT_PCM, encode(signal, WAVE_FORMAT_PCM, 16), rate, 16), "high.wav")

    assert rms(samples) < AMPLITUDE / 1000


def test_channels_are_averaged() -> None:
    left, right = tone(1000, 8000, 0.1), np.zeros(800)
    channels = [encode(left, WAVE_FORMAT_PCM, 16), encode(right, WAVE_FORMAT_PCM, 16)]

    samples = import_wav(wav(WAVE_FORMAT_PCM, channels, 8000, 16), "stereo.wav")

    assert np.max(np.abs(samples - left / 2)) <= 1


def test_six_channels_of_24_bit_extensible() -> None:
    signal = tone(440, 48000, 0.5)
    channels = [encode(signal * (index % 2), WAVE_FORMAT_PCM, 24) for index in range(6)]

    samples = import_wav(wav(WAVE_FORMAT_PCM, channels, 48000, 24, extensible=True), "surround.wav")

    assert len(samples) == 4000
    assert peak_frequency(samples) == pytest.approx(440, abs=2)
    assert rms(samples) == pytest.approx(AMPLITUDE / 2 / np.sqrt(2), rel=0.01)


def test_float_beyond_full_scale_saturates() -> None:
    samples = import_wav(wav(WAVE_FORMAT_IEEE_FLOAT, np.array([2.0, -2.0, np.nan, np.inf], "<f4").tobytes(),
                             8000, 32), "loud.wav")

    assert samples.tolist() == [32767, -32768, 0, 32767]


def test_other_chunks_are_skipped_with_their_padding() -> None:
    signal = tone(1000, 8000, 0.01)
    odd = chunk(b"LIST", b"INFOISFT\x05\0\0\0pbx!\0")  # an odd size, padded with one byte
    data = wav(WAVE_FORMAT_PCM, encode(signal, WAVE_FORMAT_PCM, 16), 8000, 16, before=odd,
               after=chunk(b"junk", b"xyz"))

    assert np.max(np.abs(import_wav(data, "tagged.wav") - signal)) <= 1


def test_espeak_ng_output_is_read() -> None:
    # What `espeak-ng -w` writes: 16-bit PCM, mono, 22050 Hz, a plain 44-byte header.
    signal = tone(300, 22050, 0.5)
    data = wav(WAVE_FORMAT_PCM, encode(signal, WAVE_FORMAT_PCM, 16), 22050, 16)
    assert len(data) - len(signal) * 2 == 44

    samples = import_wav(data, "espeak-ng output")

    assert len(samples) == 4000
    assert peak_frequency(samples) == pytest.approx(300, abs=2)


GOOD = wav(WAVE_FORMAT_PCM, encode(tone(1000, 8000, 0.5), WAVE_FORMAT_PCM, 16), 8000, 16)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.wav", b"", "empty.wav: not a WAV file (the file is empty)"),
        ("short.wav", b"RIFF\x10\0", "short.wav: not a WAV file (6 bytes, too short for a RIFF header)"),
        ("song.mp3", b"ID3\x04\0\0\0\0\0\x21" + b"\0" * 64,
         "song.mp3: not a WAV file (it is an MP3 file: convert it to WAV first)"),
        ("raw.mp3", b"\xff\xfb\x90\x64" + b"\0" * 64,
         "raw.mp3: not a WAV file (it is an MP3 file: convert it to WAV first)"),
        ("notes.txt", b"Welcome to our company, please hold.\n",
         "notes.txt: not a WAV file (it does not start with a RIFF WAVE header)"),
        ("movie.avi", b"RIFF\0\0\0\0AVI LIST",
         "movie.avi: not a WAV file (a RIFF file of type b'AVI ', not WAVE)"),
        ("cut.wav", GOOD[:12],
         "cut.wav: truncated WAV file: it ends at byte 12 without a fmt and data chunk"),
        ("cut.wav", GOOD[:30],
         "cut.wav: truncated WAV file: its 'fmt' chunk says 16 bytes, the file holds 10"),
        ("cut.wav", GOOD[:36], "cut.wav: truncated WAV file: it ends at byte 36 without a data chunk"),
        ("cut.wav", GOOD[:-4000],
         "cut.wav: truncated WAV file: its 'data' chunk says 8000 bytes, the file holds 4000"),
        ("silent.wav", wav(WAVE_FORMAT_PCM, b"", 8000, 16), "silent.wav: WAV file has no audio samples"),
        ("long.wav", wav(WAVE_FORMAT_MULAW, b"\xff" * (8000 * 601), 8000, 8),
         "long.wav: audio lasts 10:01 min, longer than the 10:00 min a prompt may last"),
        ("adpcm.wav", wav(0x0002, b"\0" * 64, 8000, 4),
         "adpcm.wav: 4-bit MS ADPCM WAV is not supported (supported: 8/16/24/32-bit PCM, 32/64-bit float, "
         "8-bit µ-law and A-law)"),
        ("ulaw16.wav", wav(WAVE_FORMAT_MULAW, b"\0" * 64, 8000, 16),
         "ulaw16.wav: 16-bit µ-law WAV is not supported (supported: 8/16/24/32-bit PCM, 32/64-bit float, "
         "8-bit µ-law and A-law)"),
        ("slow.wav", wav(WAVE_FORMAT_PCM, b"\0" * 64, 4000, 16),
         "slow.wav: sample rate 4000 Hz is not supported (supported: 8000 to 192000 Hz)"),
        ("fast.wav", wav(WAVE_FORMAT_PCM, b"\0" * 64, 384000, 16),
         "fast.wav: sample rate 384000 Hz is not supported (supported: 8000 to 192000 Hz)"),
        ("none.wav", wav(WAVE_FORMAT_PCM, [], 8000, 16), "none.wav: WAV file has 0 channels"),
        ("align.wav", wav(WAVE_FORMAT_PCM, b"\0" * 64, 8000, 16, block_align=3),
         "align.wav: WAV block align is 3 bytes, expected 2 for 1 channels of 16-bit PCM"),
        ("fmt.wav", b"RIFF\x20\0\0\0WAVE" + chunk(b"fmt ", b"\1\0\1\0") + chunk(b"data", b"\0\0"),
         "fmt.wav: WAV fmt chunk is 4 bytes, shorter than 16"),
        ("ext.wav", b"RIFF\x20\0\0\0WAVE" + chunk(b"fmt ", fmt_body(WAVE_FORMAT_PCM, 1, 8000, 16)[:14]
                                                  .replace(b"\x01\x00", b"\xfe\xff", 1) + b"\0" * 10),
         "ext.wav: WAV fmt chunk of WAVE_FORMAT_EXTENSIBLE is 24 bytes, shorter than 40"),
        ("guid.wav", wav(WAVE_FORMAT_PCM, b"\0" * 64, 8000, 16, extensible=True)
         .replace(SUBFORMAT_TAIL, b"\x11" * 14),
         f"guid.wav: WAV sub-format 0100{'11' * 14} is not supported "
         "(supported: PCM, float, µ-law, A-law)"),
    ],
)
def test_broken_files_are_refused_in_one_line(name: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        import_wav(data, name)

    assert str(raised.value) == message
