"""G.711: bit-exact with the ITU-T G.191 reference code, for every code and every sample."""

import numpy as np
import pytest

from pbx_services.rtp.g711 import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    alaw_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_alaw,
)

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


# The G.191 g711.c functions, transcribed one sample at a time: the reference the tables must match.
def reference_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x7
    step = 4 << (exponent + 1)
    return sign * ((0x80 << exponent) + step * (mantissa & 0xF) + step // 2 - 4 * 33)


def reference_ulaw_compress(sample: int) -> int:
    absno = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    absno = min(absno, 0x1FFF)
    i, segno = absno >> 6, 1
    while i != 0:
        segno += 1
        i >>= 1
    code = ((8 - segno) << 4) | (0xF - ((absno >> segno) & 0xF))
    return code | 0x80 if sample >= 0 else code


def reference_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp, mant = ix >> 4, ix & 0xF
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


def reference_alaw_compress(sample: int) -> int:
    ix = (~sample) >> 4 if sample < 0 else sample >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix = ix - 16 + (iexp << 4)
    if sample >= 0:
        ix |= 0x80
    return ix ^ 0x55


@pytest.mark.parametrize(("code", "value"), [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124),
                                             (0xFE, 8), (0x7E, -8), (0xEF, 132), (0x70, -120)])
def test_ulaw_reference_points(code: int, value: int) -> None:
    assert ulaw_decode(bytes([code])).tolist() == [value]


@pytest.mark.parametrize(("code", "value"), [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256),
                                             (0xD4, 24), (0x80, 5504)])
def test_alaw_reference_points(code: int, value: int) -> None:
    assert alaw_decode(bytes([code])).tolist() == [value]


def test_decode_matches_the_reference_for_every_code() -> None:
    assert ulaw_decode(ALL_CODES).tolist() == [reference_ulaw_expand(code) for code in range(256)]
    assert alaw_decode(ALL_CODES).tolist() == [reference_alaw_expand(code) for code in range(256)]


def test_encode_matches_the_reference_for_every_sample() -> None:
    samples = ALL_SAMPLES.tolist()
    assert list(ulaw_encode(ALL_SAMPLES)) == [reference_ulaw_compress(sample) for sample in samples]
    assert list(alaw_encode(ALL_SAMPLES)) == [reference_alaw_compress(sample) for sample in samples]


def test_decoded_samples_are_int16_one_per_byte() -> None:
    decoded = ulaw_decode(bytes(160))
    assert decoded.dtype == np.int16
    assert decoded.shape == (160,)


def test_every_code_survives_decode_then_encode() -> None:
    # µ-law has two zeros (0x7F is "negative zero"); it comes back as 0xFF.
    expected_ulaw = bytearray(ALL_CODES)
    expected_ulaw[0x7F] = 0xFF
    assert ulaw_encode(ulaw_decode(ALL_CODES)) == bytes(expected_ulaw)
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES


def test_samples_come_back_within_half_a_quantisation_step() -> None:
    magnitude = np.abs(ALL_SAMPLES.astype(np.int32))
    small, large = magnitude < 256, (magnitude >= 256) & (magnitude <= 32000)
    for decode, encode in ((ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)):
        error = np.abs(decode(encode(ALL_SAMPLES)).astype(np.int32) - ALL_SAMPLES)
        # The smallest steps are 8 (µ-law, near zero) and 16 (A-law); the largest 1024, for both.
        assert error[small].max() == 8
        assert error[large].max() == 512
        # Logarithmic: the error stays a small fraction of the sample, whatever its size.
        assert np.all(error[large] * 16 <= magnitude[large])
    # Beyond the last decision level the codes saturate.
    assert ulaw_decode(ulaw_encode(np.array([32767, -32768], dtype=np.int16))).tolist() == [32124, -32124]
    assert alaw_decode(alaw_encode(np.array([32767, -32768], dtype=np.int16))).tolist() == [32256, -32256]


def test_wider_samples_saturate_instead_of_wrapping() -> None:
    mixed = np.array([40000, -40000, 1000], dtype=np.int32)
    saturated = np.array([32767, -32768, 1000], dtype=np.int16)
    assert ulaw_encode(mixed) == ulaw_encode(saturated)
    assert alaw_encode(mixed.astype(np.float64)) == alaw_encode(saturated)


def test_transcoding_tables_equal_decode_then_encode_for_all_256_codes() -> None:
    for code in range(256):
        byte = bytes([code])
        assert ulaw_to_alaw(byte) == alaw_encode(ulaw_decode(byte)), hex(code)
        assert alaw_to_ulaw(byte) == ulaw_encode(alaw_decode(byte)), hex(code)


def test_transcoding_a_frame() -> None:
    frame = bytes.fromhex("ff7eff7eff7efe7efe7efe7e7efd7cfc7bfb7cfefe7af773ef6dec6beb")
    assert ulaw_to_alaw(frame) == alaw_encode(ulaw_decode(frame))
    assert len(alaw_to_ulaw(ulaw_to_alaw(frame))) == len(frame)


def test_silence_bytes() -> None:
    assert ulaw_decode(bytes([ULAW_SILENCE])).tolist() == [0]
    assert alaw_decode(bytes([ALAW_SILENCE])).tolist() == [8]
    assert ulaw_encode(np.zeros(2, dtype=np.int16)) == bytes([ULAW_SILENCE]) * 2
    assert alaw_encode(np.zeros(2, dtype=np.int16)) == bytes([ALAW_SILENCE]) * 2
