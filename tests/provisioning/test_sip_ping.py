"""pbx-sip-ping (role common's libexec), keepalived's track script on SIP: against a tiny UDP
responder on 127.0.0.1 built on the project's SIP parser, and against silence."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pbx_services.sip.message import SipRequest, make_response, parse_message
from tests.provisioning.conftest import REPO

SIP_PING = REPO / "ansible/roles/common/files/usr/local/libexec/pbx/pbx-sip-ping"

Answer = Callable[[SipRequest, int], bytes | None]
"""What the responder sends back to the n-th request (1, 2, ...); None: nothing."""


class Responder:
    """A UDP socket on 127.0.0.1 that records the requests it gets and answers with `answer`."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.requests: list[SipRequest] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            request = parse_message(data)
            assert isinstance(request, SipRequest)
            self.requests.append(request)
            reply = self.answer(request, len(self.requests))
            if reply is not None:
                self.sock.sendto(reply, source)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def responder() -> Iterator[Callable[[Answer], Responder]]:
    started: list[Responder] = []

    def start(answer: Answer) -> Responder:
        started.append(Responder(answer))
        return started[-1]

    yield start
    for one in started:
        one.close()


def sip_ping(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SIP_PING), *args], capture_output=True, text=True, timeout=10,
                          check=False)


def status(code: int) -> Answer:
    return lambda request, _: make_response(request, code, to_tag="t1").serialize()


def test_a_sip_response_is_success(responder: Callable[[Answer], Responder]) -> None:
    server = responder(status(200))

    result = sip_ping(f"127.0.0.1:{server.port}")

    assert (result.returncode, result.stderr) == (0, "")
    [request] = server.requests
    assert request.method == "OPTIONS"
    assert str(request.uri) == f"sip:127.0.0.1:{server.port}"
    assert request.top_via.branch is not None and request.top_via.branch.startswith("z9hG4bK")
    assert request.top_via.transport == "UDP"
    assert request.max_forwards == 70
    assert request.from_.tag
    assert request.to.tag is None
    assert (request.cseq.seq, request.cseq.method) == (1, "OPTIONS")
    assert request.headers.get("Content-Length") == "0"
    assert request.call_id


def test_any_status_means_the_sip_stack_answers(responder: Callable[[Answer], Responder]) -> None:
    server = responder(status(404))

    assert sip_ping("--timeout", "0.5", f"127.0.0.1:{server.port}").returncode == 0


def test_silence_is_failure_after_one_retransmission(responder: Callable[[Answer], Responder]) -> None:
    server = responder(lambda request, _: None)

    started = time.monotonic()
    result = sip_ping("--timeout", "0.4", f"127.0.0.1:{server.port}")
    took = time.monotonic() - started

    assert result.returncode == 1
    assert result.stderr == f"pbx-sip-ping: 127.0.0.1:{server.port}: no response within 0.4 s\n"
    assert 0.4 <= took < 2.0
    first, again = server.requests
    assert again.serialize() == first.serialize()  # the same transaction, sent again


def test_the_retransmission_is_answered(responder: Callable[[Answer], Responder]) -> None:
    server = responder(lambda request, n: status(200)(request, n) if n == 2 else None)

    assert sip_ping("--timeout", "0.5", f"127.0.0.1:{server.port}").returncode == 0
    assert len(server.requests) == 2


def test_a_response_to_another_request_does_not_count(responder: Callable[[Answer], Responder]) -> None:
    def other_call(request: SipRequest, _: int) -> bytes:
        response = make_response(request, 200)
        response.headers.set("Call-ID", "someone-else@example")
        return response.serialize()

    server = responder(other_call)

    assert sip_ping("--timeout", "0.3", f"127.0.0.1:{server.port}").returncode == 1


def test_a_closed_port_fails_with_the_reason() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = sip_ping(f"127.0.0.1:{port}")

    assert result.returncode == 1
    assert result.stderr == f"pbx-sip-ping: 127.0.0.1:{port}: Connection refused\n"


@pytest.mark.parametrize("target", ["", "host:port", "127.0.0.1:70000", "[::1", "[::1]5060"])
def test_a_bad_target_is_a_usage_mistake(target: str) -> None:
    result = sip_ping(target)

    assert result.returncode == 2
    assert "is not HOST[:PORT]" in result.stderr
