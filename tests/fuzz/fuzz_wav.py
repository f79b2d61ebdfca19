"""Fuzz target for `read_wav`, which reads uploaded prompts (atheris).

Whatever the file holds, `read_wav` returns 16-bit samples or raises WavFormatError
saying what the file is; nothing else escapes (the stdlib `wave` module raises
wave.Error, EOFError and struct.error, which must all be turned into WavFormatError).

    pip install atheris
    python tests/fuzz/fuzz_wav.py --write-seeds /tmp/wav-seeds
    mkdir -p /tmp/wav-corpus
    python tests/fuzz/fuzz_wav.py /tmp/wav-corpus /tmp/wav-seeds -max_total_time=300 -max_len=2048
"""

import io
import struct
from pathlib import Path

import atheris
import fuzzing
import numpy as np

with atheris.instrument_imports():
    from pbx_services.rtp.wav import WavFormatError, read_wav, write_wav


def test_one_input(data: bytes) -> None:
    try:
        audio = read_wav(io.BytesIO(data))
    except WavFormatError:
        return
    if audio.samples.dtype != np.int16 or audio.samples.ndim != (1 if audio.channels == 1 else 2):
        raise AssertionError(f"bad samples from {data!r}: {audio.samples.dtype} {audio.samples.shape}")


def write_seeds(directory: Path) -> None:
    """A few valid files, and the headers of the formats that are refused."""
    directory.mkdir(parents=True, exist_ok=True)
    for channels in (1, 2):
        output = io.BytesIO()
        write_wav(output, 8000, np.arange(16, dtype=np.int16).reshape(-1, channels).squeeze())
        (directory / f"pcm16_{channels}ch.wav").write_bytes(output.getvalue())
    for tag, bits in ((1, 8), (1, 24), (3, 32), (7, 8), (0xFFFE, 16)):
        fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000 * bits // 8, bits // 8, bits)
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        body += b"data" + struct.pack("<I", 8) + bytes(8)
        (directory / f"format_{tag}_{bits}.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


if __name__ == "__main__":
    fuzzing.main(test_one_input, write_seeds)
