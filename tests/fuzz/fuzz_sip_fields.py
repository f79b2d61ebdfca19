"""Fuzz target for the field parsers: SIP URIs, Address (From/To/Contact/Route), Via and CSeq.

Each parser either returns a value or raises RemoteProtocolError. URI, Address and Via
also have a compiled fast path: whatever it accepts, the general parser must accept
the same way, and the value must serialize to text that parses back to it.

    pip install atheris
    python tests/fuzz/fuzz_sip_fields.py --write-seeds /tmp/sip-fields-corpus
    python tests/fuzz/fuzz_sip_fields.py /tmp/sip-fields-corpus -max_total_time=300 -max_len=512

The first byte of an input picks the parser, the rest is the text (decoded as the
message parser decodes a header: UTF-8, other bytes kept as surrogates). The seeds
are the URIs and header values of the captures in tests/data/sip.
"""

from pathlib import Path

import atheris
import fuzzing

with atheris.instrument_imports():
    from pbx_services.sip.errors import RemoteProtocolError
    from pbx_services.sip.headers import Address, CSeq, Via
    from pbx_services.sip.message import SipParseError, SipRequest, parse_message
    from pbx_services.sip.uri import SipUri, parse_uri

DATA = Path(__file__).resolve().parents[1] / "data" / "sip"


def _uri(text: str) -> None:
    try:
        uri = parse_uri(text)
    except RemoteProtocolError:
        return
    if isinstance(uri, SipUri):
        if SipUri._parse_general(text) != uri or SipUri.parse(str(uri)) != uri:
            raise AssertionError(f"SIP URI fast and general paths disagree on {text!r}")


def _address(text: str) -> None:
    try:
        address = Address.parse(text)
    except RemoteProtocolError:
        return
    if Address._parse_general(text, "address") != address:
        raise AssertionError(f"Address fast and general paths disagree on {text!r}")
    Address.parse(str(address))


def _via(text: str) -> None:
    try:
        via = Via.parse(text)
    except RemoteProtocolError:
        return
    if Via._parse_general(text) != via or Via.parse(str(via)) != via:
        raise AssertionError(f"Via fast and general paths disagree on {text!r}")


def _cseq(text: str) -> None:
    try:
        cseq = CSeq.parse(text)
    except RemoteProtocolError:
        return
    if CSeq.parse(str(cseq)) != cseq:
        raise AssertionError(f"CSeq does not round-trip: {text!r}")


_TARGETS = (_uri, _address, _via, _cseq)


def test_one_input(data: bytes) -> None:
    if data:
        _TARGETS[data[0] % len(_TARGETS)](data[1:].decode("utf-8", "surrogateescape"))


def write_seeds(directory: Path) -> None:
    """One seed per URI and Via, From, To, Contact and CSeq value of every capture."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [*DATA.glob("*.txt"), *DATA.glob("rfc4475/*.dat")]:
        try:
            message = parse_message(path.read_bytes())
        except SipParseError:
            continue
        values = [(0, str(message.uri))] if isinstance(message, SipRequest) else []
        for target, name in ((1, "From"), (1, "To"), (1, "Contact"), (2, "Via"), (3, "CSeq")):
            values += [(target, value) for value in message.headers.get_lines(name)]
        for target, value in values:
            seed = bytes([target]) + value.encode("utf-8", "surrogateescape")
            fuzzing.write_seed(directory, seed)


if __name__ == "__main__":
    fuzzing.main(test_one_input, write_seeds)
