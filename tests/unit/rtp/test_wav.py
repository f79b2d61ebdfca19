"""WAV files: round trips, streaming writes, and the exact refusal of what is not 16-bit PCM."""

import base64
import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from pbx_services.rtp.wav import WavAudio, WavFormatError, WavWriter, read_wav, write_wav


def wav_bytes(format_tag: int, bits: int, data: bytes, channels: int = 1, rate: int = 8000) -> bytes:
    """A WAV file with any format tag, which the wave module would refuse to write."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_mono_round_trip(tmp_path: Path) -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    path = tmp_path / "prompt.wav"
    write_wav(path, 8000, samples)
    audio = read_wav(path)
    assert (audio.sample_rate, audio.channels) == (8000, 1)
    assert audio.samples.dtype == np.int16
    assert audio.samples.tolist() == samples.tolist()
    assert audio.duration == 6 / 8000


def test_the_file_is_little_endian_16_bit_pcm(tmp_path: Path) -> None:
    path = tmp_path / "two.wav"
    write_wav(path, 16000, np.array([1, -2], dtype=np.int16))
    assert path.read_bytes() == wav_bytes(1, 16, bytes.fromhex("0100feff"), rate=16000)


def test_stereo_has_one_column_per_channel(tmp_path: Path) -> None:
    samples = np.array([[1, -1], [2, -2], [3, -3]], dtype=np.int16)
    path = tmp_path / "stereo.wav"
    write_wav(path, 48000, samples)
    audio = read_wav(str(path))
    assert (audio.sample_rate, audio.channels, audio.samples.shape) == (48000, 2, (3, 2))
    assert audio.samples.tolist() == samples.tolist()


def test_writer_streams_frames_to_disk(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    frames = [np.full(160, n, dtype=np.int16) for n in range(3)]
    with WavWriter(path, 8000) as writer:
        for frame in frames:
            writer.write(frame)
        assert writer.frames_written == 480
    assert read_wav(path).samples.tolist() == np.concatenate(frames).tolist()


def test_writer_refuses_samples_that_do_not_fit_the_file(tmp_path: Path) -> None:
    with WavWriter(tmp_path / "call.wav", 8000) as writer:
        with pytest.raises(ValueError, match=r"^samples have 2 channels, the file 1$"):
            writer.write(np.zeros((4, 2), dtype=np.int16))
        with pytest.raises(ValueError, match=r"^samples are int32, int16 is required$"):
            writer.write(np.zeros(4, dtype=np.int32))


def test_streams_as_well_as_paths() -> None:
    audio = read_wav(io.BytesIO(wav_bytes(1, 16, bytes.fromhex("0100feff"))))
    assert isinstance(audio, WavAudio)
    assert (audio.sample_rate, audio.channels, audio.samples.tolist()) == (8000, 1, [1, -2])
    output = io.BytesIO()
    write_wav(output, 8000, np.array([1, -2], dtype=np.int16))
    assert output.getvalue() == wav_bytes(1, 16, bytes.fromhex("0100feff"))


@pytest.mark.parametrize(("content", "reason"), [
    (wav_bytes(1, 8, bytes(4)), "is 8-bit; 16-bit PCM is required"),
    (wav_bytes(1, 24, bytes(6)), "is 24-bit; 16-bit PCM is required"),
    (wav_bytes(3, 32, bytes(8)), "is IEEE float; 16-bit PCM is required"),
    (wav_bytes(7, 8, bytes(4)), "is µ-law; 16-bit PCM is required"),
    (wav_bytes(0xFFFE, 16, bytes(4)), "is WAVE_FORMAT_EXTENSIBLE; 16-bit PCM is required"),
    (wav_bytes(85, 0, bytes(4)), "is format 85; 16-bit PCM is required"),
    (b"ID3\x03 an mp3 file", "is not a valid WAV file: file does not start with RIFF id"),
    (wav_bytes(1, 16, bytes(4))[:30], "is truncated"),
    # Found by tests/fuzz/fuzz_wav.py: the wave module raised a bare RuntimeError.
    (base64.b64decode("UklGRkQAAABXQVZFZm10IBAAAAABAAEAQB8EAAUABgAHAAgACSAAAgAAAAEAAgADDwA="),
     "is not a valid WAV file: bad chunk size"),
    (b"", "is truncated"),
])
def test_files_that_are_not_16_bit_pcm_are_refused_saying_what_they_are(tmp_path: Path, content: bytes,
                                                                         reason: str) -> None:
    path = tmp_path / "upload.wav"
    path.write_bytes(content)
    with pytest.raises(WavFormatError) as caught:
        read_wav(path)
    assert str(caught.value) == f"WAV file {path} {reason}"


def test_a_file_written_by_the_wave_module_itself(tmp_path: Path) -> None:
    path = tmp_path / "eight.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(1)
        writer.setframerate(8000)
        writer.writeframes(bytes(8))
    with pytest.raises(WavFormatError, match=r"is 8-bit; 16-bit PCM is required$"):
        read_wav(path)
