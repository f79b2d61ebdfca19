"""Fuzz target for `RtpPacket.parse` and its fast path `rtp_header_fields` (atheris).

Whatever a peer sends, `parse` returns a packet or raises RtpParseError; the fast path
agrees with it on every packet it accepts and refuses what it refuses for the fixed
header; and a parsed packet serializes to bytes that parse back to the same packet.

    pip install atheris
    python tests/fuzz/fuzz_rtp_packet.py --write-seeds /tmp/rtp-seeds
    mkdir -p /tmp/rtp-corpus
    python tests/fuzz/fuzz_rtp_packet.py /tmp/rtp-corpus /tmp/rtp-seeds -max_total_time=300 -max_len=1500

The seeds are the packets captured in tests/data/rtp (hex there, binary here). A crash
is written to ./crash-<sha1>: turn it into a case of tests/unit/rtp/test_packet.py once fixed.
"""

from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports():
    from pbx_services.rtp.errors import RtpParseError
    from pbx_services.rtp.packet import RTP_HEADER_SIZE, RTP_VERSION, RtpPacket, is_rtcp, rtp_header_fields

DATA = Path(__file__).resolve().parents[1] / "data" / "rtp"


def test_one_input(data: bytes) -> None:
    is_rtcp(data)
    try:
        packet: RtpPacket | None = RtpPacket.parse(data)
    except RtpParseError:
        packet = None
    try:
        fields: tuple[int, int, int, int] | None = rtp_header_fields(data)
    except RtpParseError:
        fields = None
    # The fast path reads the fixed header only: it must refuse exactly the broken ones.
    fixed_header_ok = len(data) >= RTP_HEADER_SIZE and data[0] >> 6 == RTP_VERSION
    if (fields is not None) != fixed_header_ok:
        raise AssertionError(f"rtp_header_fields and parse disagree on the fixed header of {data!r}")
    if packet is None:
        return
    if fields != (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc):
        raise AssertionError(f"rtp_header_fields disagrees with parse on {data!r}")
    again = RtpPacket.parse(packet.serialize())
    if again != packet:
        raise AssertionError(f"serialize/parse is not stable for {data!r}: {packet} then {again}")


def write_seeds(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*DATA.glob("pjsua2_*.hex"), *DATA.glob("invalid/rtp_*.hex")]:
        if "rtcp" in path.name:
            continue
        for line in path.read_text().split():
            seed = bytes.fromhex(line)
            fuzzing.write_seed(directory, seed)


if __name__ == "__main__":
    fuzzing.main(test_one_input, write_seeds)
