"""Fuzz target for `parse_compound`, the RTCP parser (atheris).

Whatever a peer sends, it returns a list of packets or raises RtpParseError; and the
packets serialize to a compound that parses back to the same packets, and serializes
again to the same bytes.

    pip install atheris
    python tests/fuzz/fuzz_rtcp.py --write-seeds /tmp/rtcp-seeds
    mkdir -p /tmp/rtcp-corpus
    python tests/fuzz/fuzz_rtcp.py /tmp/rtcp-corpus /tmp/rtcp-seeds -max_total_time=300 -max_len=1500

The seeds are the compounds captured in tests/data/rtp and their broken variants. A
crash is written to ./crash-<sha1>: turn it into a case of tests/unit/rtp/test_rtcp.py.
"""

from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports():
    from pbx_services.rtp.errors import RtpParseError
    from pbx_services.rtp.rtcp import parse_compound, serialize_compound

DATA = Path(__file__).resolve().parents[1] / "data" / "rtp"


def test_one_input(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    canonical = serialize_compound(packets)
    again = parse_compound(canonical)
    if again != packets or serialize_compound(again) != canonical:
        raise AssertionError(f"serialize/parse is not stable for {data!r}: {packets} then {again}")


def write_seeds(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*DATA.glob("pjsua2_rtcp_*.hex"), *DATA.glob("invalid/rtcp_*.hex")]:
        seed = bytes.fromhex(path.read_text())
        fuzzing.write_seed(directory, seed)


if __name__ == "__main__":
    fuzzing.main(test_one_input, write_seeds)
