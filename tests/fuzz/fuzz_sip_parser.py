"""Fuzz target for `parse_message` (atheris, i.e. libFuzzer for Python).

Whatever a peer sends, the parser either returns a message or raises SipParseError;
a message's typed accessors work or raise RemoteProtocolError; and what it serializes
to parses again into the same bytes. Anything else is a crash here.

    pip install atheris
    mkdir -p /tmp/sip-corpus
    python tests/fuzz/fuzz_sip_parser.py /tmp/sip-corpus tests/data/sip tests/data/sip/rfc4475 \
        -max_total_time=300 -max_len=4096

New inputs go to the first directory (keep the fixtures out of that place); a crash is
written to ./crash-<sha1>: turn it into a case of the hypothesis tests in
tests/unit/sip/test_message.py once fixed. The same checks run in the normal suite
there, driven by hypothesis instead of coverage feedback.
"""


import atheris
import fuzzing

with atheris.instrument_imports():
    from pbx_services.sip.errors import RemoteProtocolError
    from pbx_services.sip.message import SipParseError, SipRequest, parse_message

_ACCESSORS = ("vias", "from_", "to", "cseq", "call_id", "contacts", "contact_is_star", "content_type",
              "expires")


def test_one_input(data: bytes) -> None:
    try:
        message = parse_message(data)
    except SipParseError:
        return
    for accessor in _ACCESSORS:
        try:
            getattr(message, accessor)
        except RemoteProtocolError:
            pass
    if isinstance(message, SipRequest):
        try:
            _ = message.max_forwards
        except RemoteProtocolError:
            pass
    canonical = message.serialize()
    again = parse_message(canonical)
    if again.serialize() != canonical or again.body != message.body:
        raise AssertionError(f"serialize/parse is not stable for {data!r}")


if __name__ == "__main__":
    fuzzing.main(test_one_input)
