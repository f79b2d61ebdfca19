"""The RFC 4475 torture messages sent to the running Call Manager over UDP.

Each valid request is answered as the RFC says (or challenged first, for the methods
that need credentials here) and never as malformed; each invalid one is answered 400 (505
for a bad version) or dropped; responses nobody asked for are dropped. Afterwards the
daemon still answers OPTIONS. The parser-level checks of the same corpus are in
tests/unit/sip/test_torture.py; the table is tests/data/sip/rfc4475/expected.json.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, running_pbx

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parents[1] / "data" / "sip" / "rfc4475"
EXPECTED: dict[str, dict[str, object]] = json.loads((CORPUS / "expected.json").read_text())
CHALLENGE = {"REGISTER": 401, "INVITE": 407}
TORTURE_DOMAINS = ("example.com", "example.net", "example.org", "ift.client.example.net")
_TOP_VIA = re.compile(rb"^(?:Via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*(\w+)[ \t]+"
                      rb"\[?([^;\s,\]]+?)\]?(?::(\d+))?(?=[;\s,])", re.M | re.I)
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.M | re.I)
_CSEQ_METHOD = re.compile(rb"^CSeq[ \t]*:[ \t]*\d+[ \t]+(\S+)", re.M | re.I)


def _answer(port: int, data: bytes) -> int | None:
    """The final answer to `data` (or the last provisional one), None when nothing came back.

    The message is sent from the port its top Via names, so that a response sent per RFC
    3261 18.2.2 comes back to us; replies to other messages (late ones) are ignored.
    """
    match = _TOP_VIA.search(data)
    default = 5061 if match and match.group(1).upper() == b"TLS" else 5060
    via_port = int(match.group(3)) if match and match.group(3) else default
    call_id = _CALL_ID.search(data)
    answer = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", via_port))
        except OSError:
            pytest.skip(f"port {via_port} that the message's Via names is busy here")
        sock.settimeout(1.0)
        sock.sendto(data, ("127.0.0.1", port))
        while True:
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                return answer
            reply_call_id = _CALL_ID.search(reply)
            if call_id and reply_call_id and reply_call_id.group(1) != call_id.group(1):
                continue
            if _tx_of(reply) != _tx_of(data) and None not in (*_tx_of(reply), *_tx_of(data)):
                continue  # an earlier message's response retransmitted (same daemon, same Via port)
            answer = int(reply.split(b" ", 2)[1])
            if answer >= 200:
                return answer


def _tx_of(message: bytes) -> tuple[bytes | None, bytes | None]:
    """The top Via's branch and the CSeq's method: which transaction a response answers."""
    branch = re.search(rb"branch=([^;\s,]+)", message, re.I)
    cseq = _CSEQ_METHOD.search(message)
    return (branch.group(1).lower() if branch else None, cseq.group(1).upper() if cseq else None)


def _method(data: bytes) -> str:
    return data.split(b" ", 1)[0].decode("latin-1")


def _batches() -> dict[str, int]:
    """Each message's daemon: one per batch of messages that no live transaction of another could
    answer. The RFC's messages reuse Via branches, and a message whose branch, sent-by and method
    (ACK's being INVITE's) match an earlier message's live transaction would get that one's answer
    again (RFC 3261 17.2.3); messages of other methods, or other branches, may share a daemon."""
    batch_of: dict[str, int] = {}
    seen: dict[tuple[bytes, bytes], int] = {}
    for name in sorted(EXPECTED):
        data = (CORPUS / f"{name}.dat").read_bytes()
        branch = re.search(rb"branch=([^;\s,]+)", data, re.I)
        method = data.split(b" ", 1)[0]
        # Keyed without the sent-by, which only ever tells transactions apart: stricter than needed.
        key = (branch.group(1).lower() if branch else b"", b"INVITE" if method == b"ACK" else method)
        batch_of[name] = seen[key] = seen.get(key, -1) + 1
    return batch_of


BATCH_OF = _batches()


@pytest.fixture(scope="module")
def torture_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], PbxServer]]:
    """The daemon of each batch, started when its first message comes (7 for the 49 messages)."""
    # The messages' domains are the default tenant's other names here: a domain no tenant has is
    # refused (403 Unknown Domain) before the RFC's answer could be given.
    env = {"PBX_CALLMANAGER__LOCAL_NAMES": ",".join(TORTURE_DOMAINS)}
    servers: dict[int, PbxServer] = {}
    with ExitStack() as stack:
        def server(batch: int) -> PbxServer:
            if batch not in servers:
                data_dir = tmp_path_factory.mktemp(f"torture-{batch}") / "data"
                servers[batch] = stack.enter_context(running_pbx(data_dir, env))
            return servers[batch]

        yield server


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message(torture_servers: Callable[[int], PbxServer], name: str) -> None:
    pbx_server = torture_servers(BATCH_OF[name])
    case = EXPECTED[name]
    data = (CORPUS / f"{name}.dat").read_bytes()
    answer = _answer(pbx_server.port, data)
    expected = case["answer"]
    if data.startswith(b"SIP/"):
        assert answer is None, f"{name}: a stray response must be dropped"
    elif not case["valid"]:
        assert answer in (expected, None), f"{name}: invalid, expected {expected} or nothing, got {answer}"
    elif expected is not None:
        challenge = CHALLENGE.get(_method(data))
        assert answer in (expected, challenge), f"{name}: expected {expected}, got {answer}"
    else:
        assert answer is not None and answer not in (400, 505), f"{name}: valid, but answered {answer}"
    # Whatever it was sent, the daemon still serves.
    options = (f"OPTIONS sip:127.0.0.1:{pbx_server.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKafter{name};rport\r\nMax-Forwards: 70\r\n"
               f"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: after-{name}\r\n"
               "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.sendto(options.encode(), ("127.0.0.1", pbx_server.port))
        assert sock.recv(65535).startswith(b"SIP/2.0 200 ")
