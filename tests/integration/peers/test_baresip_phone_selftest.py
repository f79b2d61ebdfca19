"""BaresipPhone checked against a real registrar: two baresip phones register with digest auth at a
Kamailio, call each other through it and hear each other's 1 kHz tone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import free_port
from tests.integration.peers.baresip_phone import BARESIP, SAMPLE_RATE, BaresipPhone, assert_heard_the_tone

pytestmark = pytest.mark.integration

KAMAILIO = "/usr/sbin/kamailio"
PASSWORD = "selftest-secret"

# Registrar (memory-only usrloc, digest auth with one fixed password) and record-routing proxy.
KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
dns=no
rev_dns=no
use_dns_cache=off
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}

loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

modparam("usrloc", "db_mode", 0)
modparam("rr", "append_fromtag", 1)

request_route {{
	if (!mf_process_maxfwd_header("10")) {{
		sl_send_reply("483", "Too Many Hops");
		exit;
	}}
	if (is_method("OPTIONS") && uri==myself && $rU==$null) {{
		sl_send_reply("200", "OK");
		exit;
	}}
	if (has_totag()) {{
		if (loose_route()) {{
			t_relay();
		}} else if (is_method("ACK")) {{
			if (t_check_trans()) {{
				t_relay();
			}}
		}} else {{
			sl_send_reply("404", "Not here");
		}}
		exit;
	}}
	if (is_method("CANCEL")) {{
		if (t_check_trans()) {{
			t_relay();
		}}
		exit;
	}}
	if (is_method("REGISTER")) {{
		if (!pv_www_authenticate("$td", "{password}", "0")) {{
			www_challenge("$td", "0");
			exit;
		}}
		if (!save("location")) {{
			sl_reply_error();
		}}
		exit;
	}}
	if (!is_method("INVITE")) {{
		sl_send_reply("405", "Method Not Allowed");
		exit;
	}}
	if (t_precheck_trans()) {{
		t_check_trans();
		exit;
	}}
	t_check_trans();
	if (!pv_proxy_authenticate("$fd", "{password}", "0")) {{
		proxy_challenge("$fd", "0");
		exit;
	}}
	consume_credentials();
	record_route();
	if (!lookup("location")) {{
		sl_send_reply("404", "Not Found");
		exit;
	}}
	t_relay();
	exit;
}}
"""


@dataclass
class Kamailio:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _answers_options(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.settimeout(0.2)
        here = probe.getsockname()[1]
        request = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{here};rport;branch=z9hG4bK-probe-{time.monotonic_ns()}\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:127.0.0.1>\r\n"
                   f"Call-ID: probe-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        probe.sendto(request.encode(), ("127.0.0.1", port))
        try:
            return probe.recv(65536).startswith(b"SIP/2.0 200")
        except OSError:
            return False


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    if not os.access(KAMAILIO, os.X_OK):
        pytest.skip(f"{KAMAILIO} is not installed (apt-get install kamailio)")
    port = free_port()
    config = tmp_path / "kamailio.cfg"
    config.write_text(KAMAILIO_CFG.format(port=port, password=PASSWORD))
    log_path = tmp_path / "kamailio.log"
    command = [KAMAILIO, "-f", str(config), "-Y", str(tmp_path), "-P", str(tmp_path / "kamailio.pid"),
               "-x", "tlsf", "-X", "tlsf", "-m", "256", "-M", "16", "-DD", "-E"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not _answers_options(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("kamailio did not start:\n" + log_path.read_text())
        yield Kamailio(port=port, process=process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def phones(kamailio: Kamailio, request: pytest.FixtureRequest) -> Iterator[tuple[BaresipPhone, BaresipPhone]]:
    if not os.access(BARESIP, os.X_OK):
        pytest.skip(f"{BARESIP} is not installed (apt-get install baresip-core)")
    transport, callee_auto_answer = request.param
    started: list[BaresipPhone] = []
    try:
        for user, auto_answer in (("alice", False), ("bob", callee_auto_answer)):
            started.append(BaresipPhone(user=user, password=PASSWORD, server=kamailio.address,
                                        port=free_port(pair_spacing=2), transport=transport,
                                        auto_answer=auto_answer))
        for phone in started:
            registered = phone.register()
            assert (registered["type"], registered["param"]) == ("REGISTER_OK", "200 OK")
        yield started[0], started[1]
    finally:
        for phone in started:
            phone.close()


@pytest.mark.parametrize("phones", [("udp", True), ("tcp", True)], indirect=True, ids=["udp", "tcp"])
def test_auto_answered_call_carries_audio_both_ways(phones: tuple[BaresipPhone, BaresipPhone],
                                                    kamailio: Kamailio) -> None:
    caller, callee = phones
    caller.call(f"sip:bob@{kamailio.address}")
    assert "alice@" in callee.wait_for("CALL_ESTABLISHED")["peeruri"]
    assert "bob@" in caller.wait_for("CALL_ESTABLISHED")["peeruri"]
    time.sleep(2)
    assert callee.received_audio_frames() > SAMPLE_RATE
    assert caller.received_audio_frames() > SAMPLE_RATE
    caller.hangup()
    caller.wait_for("CALL_CLOSED")
    callee.wait_for("CALL_CLOSED")
    assert_heard_the_tone(callee)
    assert_heard_the_tone(caller)


@pytest.mark.parametrize("phones", [("udp", False)], indirect=True, ids=["udp"])
def test_manually_answered_call_rings_then_callee_hangs_up(phones: tuple[BaresipPhone, BaresipPhone],
                                                           kamailio: Kamailio) -> None:
    caller, callee = phones
    caller.call(f"sip:bob@{kamailio.address}")
    assert "alice@" in callee.wait_for("CALL_INCOMING")["peeruri"]
    caller.wait_for("CALL_RINGING")
    assert caller.received_audio_frames() == 0
    callee.answer()
    caller.wait_for("CALL_ESTABLISHED")
    callee.wait_for("CALL_ESTABLISHED")
    time.sleep(1.5)
    callee.hangup()
    assert callee.wait_for("CALL_CLOSED")["param"] == "Connection reset by user"
    assert caller.wait_for("CALL_CLOSED")["param"] == "Connection reset by peer"
    assert caller.received_audio_frames() > SAMPLE_RATE
    assert callee.received_audio_frames() > SAMPLE_RATE
