"""Fuzz target for `TelephoneEvent.parse` and the `DtmfReceiver` it feeds (atheris).

The input is a sequence of (timestamp, marker, payload) records as a receiver would
get them: each payload parses or raises RtpParseError, a parsed event serializes back
to its first four bytes (the reserved bit aside), and the receiver never reports more
digits than it got packets starting an event.

    pip install atheris
    mkdir -p /tmp/dtmf-corpus
    python tests/fuzz/fuzz_telephone_event.py /tmp/dtmf-corpus -max_total_time=300 -max_len=512
"""


import atheris
import fuzzing

with atheris.instrument_imports():
    from pbx_services.rtp.dtmf import DTMF_EVENTS, DtmfReceiver, TelephoneEvent
    from pbx_services.rtp.errors import RtpParseError


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    receiver = DtmfReceiver()
    packets = 0
    digits = []
    while provider.remaining_bytes():
        timestamp = provider.ConsumeIntInRange(0, 0xFFFF_FFFF)
        marker = provider.ConsumeBool()
        payload = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 8))
        try:
            event = TelephoneEvent.parse(payload)
        except RtpParseError:
            try:
                receiver.feed(timestamp, payload, marker)
            except RtpParseError:
                continue
            raise AssertionError(f"the receiver accepts a payload parse refuses: {payload!r}") from None
        if event.serialize() != bytes([payload[0], payload[1] & 0xBF]) + payload[2:4]:
            raise AssertionError(f"telephone event does not round-trip: {payload!r}")
        packets += 1
        digit = receiver.feed(timestamp, payload, marker)
        if digit is not None:
            if digit not in DTMF_EVENTS:
                raise AssertionError(f"not a digit: {digit!r}")
            digits.append(digit)
    if len(digits) > packets:
        raise AssertionError(f"{len(digits)} digits from {packets} packets")


if __name__ == "__main__":
    fuzzing.main(test_one_input)
