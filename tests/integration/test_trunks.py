"""SIP trunks with sipp as the provider: calls out through routes (normalised number, caller ID,
failover to the next trunk, a trunk down by its OPTIONS probes passed over), calls in to DIDs
(in and outside their hours), the PBX's registration at the provider."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pbx_services.callmanager.trunks import CATALOG_TTL
from tests.integration.conftest import PBX, PbxServer, distinct_ports, free_port, pbx, running_pbx
from tests.integration.peers import sipp
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_callmanager_workers import workers_env
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

CATALOG_WAIT = CATALOG_TTL + 2.0
"""Seconds until the Call Manager has read trunks, routes and DIDs added while it runs."""


def _provider(scenario: str, tmp_path: Path, calls: int, port: int, *args: str
              ) -> tuple[subprocess.Popen[str], Path]:
    """sipp as the provider's server on `port`: `scenario` for `calls` calls."""
    return sipp.start(scenario, tmp_path, "-m", str(calls), *args, port=port)


def _add_trunk(pbx_server: PbxServer, name: str, port: int, *options: str) -> None:
    """`pbx trunk add NAME` to 127.0.0.1:`port`, not probed unless `options` say so: sipp takes an
    OPTIONS probe outside its scenario for a call of its own (-m counts it; -aa answers it)."""
    _cli(pbx_server, "trunk", "add", name, "--host", "127.0.0.1", "--port", str(port),
         "--probe-interval", "0", *options)


def _state(name: str):  # noqa: ANN202 - a predicate for wait_for
    return lambda event: event["state"] == name


def _cli(pbx_server: PbxServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`pbx ARGS` on the server's data dir, with its HTTP port (where the control API answers)."""
    return subprocess.run([*PBX, *args, "--data-dir", str(pbx_server.data_dir)], capture_output=True,
                          text=True, check=check, timeout=60,
                          env={**os.environ, "PBX_HTTP__PORT": str(pbx_server.http_port)})


def _messages(work_dir: Path, scenario: str) -> str:
    """What sipp received and sent (its -trace_msg log) for `scenario`."""
    return "".join(path.read_text(errors="replace") for path in work_dir.glob(f"{scenario}_*_messages.log"))


@pytest.fixture
def phone(pbx_server: PbxServer) -> Iterator[Pjsua2Phone]:
    password = pbx_server.add_user("1001")
    started = Pjsua2Phone(user="1001", password=password, server=pbx_server.address, port=free_port())
    try:
        assert started.register()["code"] == 200
        yield started
    finally:
        started.close()


def _call_out(phone: Pjsua2Phone, pbx_server: PbxServer, number: str, **call: Any) -> None:
    """A call from `phone` to `number`, answered, then hung up; `call`: more of the call command."""
    phone.send("call", uri=f"sip:{number}@{pbx_server.address}", **call)
    assert phone.wait_for("call_state", _state("CONFIRMED"), timeout=15)["code"] == 200
    time.sleep(0.5)
    phone.send("hangup")
    phone.wait_for("call_state", _state("DISCONNECTED"), timeout=10)


def test_an_outbound_call_leaves_on_the_routes_trunk_with_the_normalised_number_and_caller_id(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--caller-id", "+3312345678")
    _cli(pbx_server, "route", "add", "national", "--pattern", "_90[1-9]XXXXXXXX", "--strip", "2",
         "--prepend", "+33", "--trunk", "provider")
    uas, stat = _provider("uas_answer", tmp_path, 1, provider_port, "-trace_msg")
    time.sleep(CATALOG_WAIT)

    _call_out(phone, pbx_server, "90612345678")

    result = sipp.finish(uas, stat, timeout=30)
    assert result.successful == 1, result.output
    seen = _messages(tmp_path, "uas_answer")
    assert f"INVITE sip:+33612345678@127.0.0.1:{provider_port} SIP/2.0" in seen
    assert "From: <sip:+3312345678@127.0.0.1>;tag=" in seen
    assert "To: <sip:+33612345678@127.0.0.1>" in seen


def test_the_first_trunk_answering_503_moves_the_call_to_the_second(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    down_port, up_port = distinct_ports(2)
    _add_trunk(pbx_server, "down", down_port)
    _add_trunk(pbx_server, "up", up_port)
    _cli(pbx_server, "route", "add", "all", "--pattern", "re:^0[0-9]{9}$", "--trunk", "down", "--trunk", "up")
    failing, failing_stat = _provider("trunk_uas_503", tmp_path, 1, down_port, "-trace_msg")
    answering, answering_stat = _provider("uas_answer", tmp_path, 1, up_port, "-trace_msg")
    time.sleep(CATALOG_WAIT)

    _call_out(phone, pbx_server, "0612345678")

    assert sipp.finish(answering, answering_stat, timeout=30).successful == 1
    sipp.finish(failing, failing_stat, timeout=30)
    assert f"INVITE sip:0612345678@127.0.0.1:{down_port} SIP/2.0" in _messages(tmp_path, "trunk_uas_503")
    assert f"INVITE sip:0612345678@127.0.0.1:{up_port} SIP/2.0" in _messages(tmp_path, "uas_answer")


def test_an_inbound_call_from_the_trunk_to_a_did_rings_its_extension(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port)
    _cli(pbx_server, "did", "add", "0140000000", "--destination", "1001")
    time.sleep(CATALOG_WAIT)

    incoming = _call_from_provider(pbx_server, phone, provider_port, "0140000000", tmp_path)

    assert "sipp@" in incoming["remote_uri"]
    assert "407" not in _messages(tmp_path, "uac").split("SIP/2.0 200", 1)[0]


def _call_from_provider(pbx_server: PbxServer, phone: Pjsua2Phone, provider_port: int, did: str,
                        tmp_path: Path) -> dict[str, Any]:
    """sipp's built-in UAC calls `did` from the trunk's address and port (no digest is asked of
    it); `phone` answers. The phone's incoming event."""
    caller = subprocess.Popen(
        ["sipp", pbx_server.address, "-sn", "uac", "-s", did, "-m", "1", "-p", str(provider_port),
         *sipp.COMMON, "-trace_msg", "-d", "1000"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        incoming = phone.wait_for("incoming", timeout=15)
        phone.send("answer", code=200)
        phone.wait_for("call_state", _state("CONFIRMED"), timeout=10)
        output, _ = caller.communicate(timeout=30)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert caller.returncode == 0, output[-2000:]
    return incoming


def test_a_providers_caller_is_shown_and_kept_in_the_trunks_format(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--number-format", "e164", "--country-code", "33",
               "--national-prefix", "0")
    _cli(pbx_server, "did", "add", "0140000000", "--destination", "1001")
    time.sleep(CATALOG_WAIT)

    # The provider writes its caller's number nationally (0612345678), from the trunk's port.
    caller = subprocess.Popen(
        ["sipp", pbx_server.address, "-sf", str(sipp.SCENARIOS / "trunk_uac.xml"), "-s", "0140000000",
         "-key", "caller", "0612345678", "-m", "1", "-p", str(provider_port), *sipp.COMMON, "-d", "500"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        incoming = phone.wait_for("incoming", timeout=15)
        phone.send("answer", code=200)
        output, _ = caller.communicate(timeout=30)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert caller.returncode == 0, output[-2000:]
    assert "sip:+33612345678@" in incoming["remote_uri"]
    cdrs = pbx_server.wait_for_cdrs(1)
    assert [(cdr["caller"], cdr["callee"]) for cdr in cdrs] == [("+33612345678", "1001")]


def test_a_call_from_the_trunk_to_an_unknown_did_is_refused_with_404(
        pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port)
    time.sleep(CATALOG_WAIT)
    caller = subprocess.run(
        ["sipp", pbx_server.address, "-sn", "uac", "-s", "0149999999", "-m", "1", "-p", str(provider_port),
         *sipp.COMMON, "-trace_msg"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert caller.returncode != 0
    assert "SIP/2.0 404 Unknown DID" in _messages(tmp_path, "uac")


def test_the_pbx_registers_at_a_provider_that_challenges(pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    registrar, stat = _provider("trunk_registrar", tmp_path, 1, provider_port, "-trace_msg")
    _add_trunk(pbx_server, "provider", provider_port, "--username", "acme", "--password", "s3cret-trunk",
               "--register")

    result = sipp.finish(registrar, stat, timeout=30)

    assert result.successful == 1, result.output
    seen = _messages(tmp_path, "trunk_registrar")
    assert 'Authorization: Digest username="acme", realm="provider.example"' in seen
    listing = _wait_for_listing(pbx_server, "registered (200")
    assert "provider" in listing


def test_a_registration_the_provider_refuses_shows_its_answer_in_trunk_list(
        pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    registrar, stat = _provider("trunk_registrar_403", tmp_path, 1, provider_port)
    _add_trunk(pbx_server, "provider", provider_port, "--username", "acme", "--password", "wrong-one",
               "--register")
    sipp.finish(registrar, stat, timeout=30)
    assert "failed: 403 Forbidden" in _wait_for_listing(pbx_server, "failed: 403")


def _wait_for_listing(pbx_server: PbxServer, expected: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        listing = _cli(pbx_server, "trunk", "list").stdout
        if expected in listing or time.monotonic() > deadline:
            return listing
        time.sleep(0.5)


def test_a_dial_pattern_that_does_not_compile_is_refused_naming_it(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    pbx("init", "--data-dir", data_dir)
    pbx("trunk", "add", "provider", "--host", "127.0.0.1", "--data-dir", data_dir)
    for pattern in ("_9[2-", "re:^(0"):
        refused = pbx("route", "add", "bad", "--pattern", pattern, "--trunk", "provider",
                      "--data-dir", data_dir, check=False)
        assert refused.returncode != 0
        assert f"dial pattern '{pattern}' does not compile" in refused.stderr
    assert "no outbound routes" in pbx("route", "list", "--data-dir", data_dir).stdout
    unknown = pbx("route", "add", "r", "--pattern", "_0.", "--trunk", "nowhere", "--data-dir", data_dir,
                  check=False)
    assert "trunk 'nowhere' does not exist" in unknown.stderr


def _log_line(pbx_server: PbxServer, text: str, timeout: float = 5.0) -> str | None:
    """The first line of the daemon's log holding `text`, waited for."""
    deadline = time.monotonic() + timeout
    while True:
        found = next((line for line in list(pbx_server.log_lines) if text in line), None)
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _limited_phone(pbx_server: PbxServer, *options: str) -> Pjsua2Phone:
    """1001, added with `options` (its permission and limit) before it registers."""
    _cli(pbx_server, "user", "add", "1001", "--password=s3cret-phone", *options)
    started = Pjsua2Phone(user="1001", password="s3cret-phone", server=pbx_server.address, port=free_port())
    assert started.register()["code"] == 200
    return started


def test_an_international_call_from_a_national_user_is_refused_with_403_and_the_reason_logged(
        pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port)
    _cli(pbx_server, "route", "add", "world", "--pattern", "_00Z.", "--trunk", "provider",
         "--permission", "international")
    uas, stat = _provider("uas_answer", tmp_path, 1, provider_port, "-trace_msg")
    phone = _limited_phone(pbx_server, "--permission", "national")
    try:
        time.sleep(CATALOG_WAIT)
        phone.send("call", uri=f"sip:0044207946000@{pbx_server.address}")
        refused = phone.wait_for("call_state", _state("DISCONNECTED"), timeout=15)
    finally:
        phone.close()
        uas.kill()
    sipp.finish(uas, stat, timeout=10)

    assert (refused["code"], refused["reason"]) == (403, "Not Allowed To Call This Number")
    assert _log_line(pbx_server, "call from 1001 to 0044207946000 refused: route world is international, "
                                 "user's permission is national") is not None
    assert "INVITE" not in _messages(tmp_path, "uas_answer")


def test_past_the_users_call_limit_a_call_is_refused_but_the_emergency_number_goes_out(
        pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port)
    _cli(pbx_server, "route", "add", "emergency", "--pattern", "112", "--trunk", "provider",
         "--permission", "emergency")
    _cli(pbx_server, "route", "add", "national", "--pattern", "_0[1-9]XXXXXXXX", "--trunk", "provider")
    # The provider answers both calls that reach it (the first, then 112) and holds them.
    uas, stat = _provider("uas_answer", tmp_path, 2, provider_port, "-trace_msg")
    phone = _limited_phone(pbx_server, "--max-calls", "1")
    try:
        time.sleep(CATALOG_WAIT)
        phone.send("call", uri=f"sip:0612345678@{pbx_server.address}")
        assert phone.wait_for("call_state", _state("CONFIRMED"), timeout=15)["code"] == 200

        phone.send("call", uri=f"sip:0698765432@{pbx_server.address}")
        refused = phone.wait_for("call_state", lambda e: (e["index"], e["state"]) == (1, "DISCONNECTED"),
                                 timeout=15)
        phone.send("call", uri=f"sip:112@{pbx_server.address}")
        emergency = phone.wait_for("call_state", lambda e: e["index"] == 2 and e["state"] in (
            "CONFIRMED", "DISCONNECTED"), timeout=15)
        phone.send("hangup")
    finally:
        phone.close()
    result = sipp.finish(uas, stat, timeout=30)

    assert (refused["code"], refused["reason"]) == (403, "Call Limit Reached")
    assert (emergency["state"], emergency["code"]) == ("CONFIRMED", 200)
    seen = _messages(tmp_path, "uas_answer")
    assert f"INVITE sip:0612345678@127.0.0.1:{provider_port} SIP/2.0" in seen
    assert f"INVITE sip:112@127.0.0.1:{provider_port} SIP/2.0" in seen
    assert "0698765432" not in seen
    assert _log_line(pbx_server, "call from 1001 to 0698765432 refused: user's limit of 1 calls reached") \
        is not None
    assert _log_line(pbx_server, "call from 1001 to 112: emergency call put through") is not None
    assert result.successful == 2, result.output


def test_a_trunk_that_stops_answering_options_is_down_and_calls_go_straight_to_the_second(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    first_port, second_port = distinct_ports(2)
    _add_trunk(pbx_server, "first", first_port, "--probe-interval", "1")
    _add_trunk(pbx_server, "second", second_port)
    _cli(pbx_server, "route", "add", "all", "--pattern", "re:^0[0-9]{9}$", "--trunk", "first", "--trunk",
         "second")
    # The provider's first server answers three probes, then is gone.
    options, options_stat = sipp.start("trunk_options", tmp_path, "-m", "3", "-trace_msg", port=first_port)
    answering, answering_stat = _provider("uas_answer", tmp_path, 1, second_port, "-trace_msg")
    assert sipp.finish(options, options_stat, timeout=30).successful == 3
    assert "OPTIONS sip:127.0.0.1:" in _messages(tmp_path, "trunk_options")
    listing = _wait_for_listing(pbx_server, "down: no answer")
    assert "down: no answer" in listing, listing
    assert _log_line(pbx_server, "trunk pbx.local/first is down: OPTIONS: no answer (2 probes in a row)")

    # Whatever reaches the first server's port now is seen, and not answered.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", first_port))
    silent.settimeout(0.2)
    try:
        started = time.monotonic()
        _call_out(phone, pbx_server, "0612345678")
        took = time.monotonic() - started
        reached_first = []
        while True:
            try:
                reached_first.append(silent.recv(65535).decode(errors="replace"))
            except TimeoutError:
                break
    finally:
        silent.close()
    assert sipp.finish(answering, answering_stat, timeout=30).successful == 1
    assert f"INVITE sip:0612345678@127.0.0.1:{second_port} SIP/2.0" in _messages(tmp_path, "uas_answer")
    assert reached_first and all(message.startswith("OPTIONS ") for message in reached_first)
    assert took < 5.0, f"the call took {took:.1f} s: it waited for the trunk that is down"
    assert _log_line(pbx_server, "call to 0612345678: trunk first skipped, down since its OPTIONS got no "
                                 "answer")
    assert "PROBE" in _cli(pbx_server, "trunk", "list").stdout


def test_the_number_and_caller_id_leave_in_e164_and_a_withheld_one_only_asserted(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--caller-id", "0140000000", "--number-format", "e164",
               "--country-code", "33", "--national-prefix", "0", "--codecs", "PCMU")
    _cli(pbx_server, "route", "add", "national", "--pattern", "_0[1-9]XXXXXXXX", "--trunk", "provider")
    uas, stat = _provider("uas_answer", tmp_path, 2, provider_port, "-trace_msg")
    time.sleep(CATALOG_WAIT)

    _call_out(phone, pbx_server, "0612345678")
    _call_out(phone, pbx_server, "0698765432", headers={"Privacy": "id"})

    result = sipp.finish(uas, stat, timeout=30)
    assert result.successful == 2, result.output
    seen = _messages(tmp_path, "uas_answer")
    first, withheld = seen.split("INVITE sip:+33698765432@", 1)
    assert "Privacy" not in first and "P-Asserted-Identity" not in first
    assert "From: Anonymous <sip:anonymous@anonymous.invalid>;tag=" in withheld
    assert "P-Asserted-Identity: <sip:+33140000000@127.0.0.1>" in withheld
    assert "Privacy: id" in withheld
    assert f"INVITE sip:+33612345678@127.0.0.1:{provider_port} SIP/2.0" in seen
    assert "From: <sip:+33140000000@127.0.0.1>;tag=" in seen
    assert "To: <sip:+33612345678@127.0.0.1>" in seen
    # The offer the provider got: PCMU only (the trunk's codecs), telephone-events kept.
    invite = seen[seen.index("INVITE sip:"):seen.index("SIP/2.0 180")]
    offered = re.search(r"m=audio \d+ RTP/AVP ([0-9 ]+)", invite)
    assert offered is not None and offered[1].split()[0] == "0", invite
    assert "PCMA/8000" not in invite and "G722/8000" not in invite and "telephone-event" in invite


def test_a_user_whose_number_is_withheld_leaves_anonymous_though_its_phone_does_not_ask(
        pbx_server: PbxServer, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--caller-id", "0140000000")
    _cli(pbx_server, "route", "add", "national", "--pattern", "_0[1-9]XXXXXXXX", "--trunk", "provider")
    password = pbx_server.add_user("1003")
    _cli(pbx_server, "user", "set", "1003", "--withhold-number")
    uas, stat = _provider("uas_answer", tmp_path, 1, provider_port, "-trace_msg")
    time.sleep(CATALOG_WAIT)
    withheld = Pjsua2Phone(user="1003", password=password, server=pbx_server.address, port=free_port())
    try:
        assert withheld.register()["code"] == 200
        _call_out(withheld, pbx_server, "0612345678")  # a stock call: no Privacy, its own From
    finally:
        withheld.close()

    result = sipp.finish(uas, stat, timeout=30)
    assert result.successful == 1, result.output
    seen = _messages(tmp_path, "uas_answer")
    assert "From: Anonymous <sip:anonymous@anonymous.invalid>;tag=" in seen
    assert "P-Asserted-Identity: <sip:0140000000@127.0.0.1>" in seen and "Privacy: id" in seen
    assert "sip:1003@" not in seen


def test_a_reinvite_to_the_provider_offers_the_trunks_codecs_only(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    """The phone's hold offers its whole codec list again; the provider, as in the first INVITE,
    is offered only the trunk's."""
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--codecs", "PCMU")
    _cli(pbx_server, "route", "add", "national", "--pattern", "_0[1-9]XXXXXXXX", "--trunk", "provider")
    uas, stat = _provider("trunk_uas_reinvite", tmp_path, 1, provider_port, "-trace_msg")
    time.sleep(CATALOG_WAIT)

    phone.send("call", uri=f"sip:0612345678@{pbx_server.address}")
    assert phone.wait_for("call_state", _state("CONFIRMED"), timeout=15)["code"] == 200
    phone.send("hold")
    held = phone.wait_for("media", lambda event: event["local_hold"], timeout=10)
    phone.send("hangup")
    phone.wait_for("call_state", _state("DISCONNECTED"), timeout=10)

    result = sipp.finish(uas, stat, timeout=30)
    assert result.successful == 1, result.output
    assert held["local_hold"]
    seen = _messages(tmp_path, "trunk_uas_reinvite")
    # sipp's log: a line of dashes, what it did ("UDP message received [N] bytes :"), the message.
    invites = [entry for entry in re.split(r"\n-{20,}[^\n]*\n", seen)
               if re.search(r"message received .*\n\s*INVITE sip:", entry)]
    offers = [re.search(r"m=audio \d+ RTP/AVP ([0-9 ]+)", invite) for invite in invites]
    assert len(offers) == 2 and all(offers), seen
    for offer, invite in zip(offers, invites, strict=True):
        assert offer is not None and offer[1].split()[0] == "0", invite
        assert "PCMA/8000" not in invite and "G722/8000" not in invite and "telephone-event" in invite
    assert "a=sendonly" in invites[1] or "a=inactive" in invites[1], invites[1]


def test_a_providers_reinvite_is_cut_to_the_trunks_codecs_and_refused_without_any(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    _add_trunk(pbx_server, "provider", provider_port, "--codecs", "PCMU")
    _cli(pbx_server, "did", "add", "0140000000", "--destination", "1001")
    time.sleep(CATALOG_WAIT)

    caller, stat = sipp.start("trunk_uac_reinvite", tmp_path, "-s", "0140000000", "-key", "caller",
                              "0612345678", "-m", "1", "-d", "1000", "-trace_msg", remote=pbx_server.address,
                              port=provider_port)
    phone.wait_for("incoming", timeout=15)
    phone.send("answer", code=200)
    phone.wait_for("call_state", _state("CONFIRMED"), timeout=10)
    result = sipp.finish(caller, stat, timeout=30)

    assert (result.returncode, result.successful) == (0, 1), result.output  # 488 to G729 only
    seen = _messages(tmp_path, "trunk_uac_reinvite")
    answers = [entry for entry in re.split(r"\n-{20,}[^\n]*\n", seen)
               if re.search(r"message received .*\n\s*SIP/2.0 200 .*\n(.*\n)*CSeq: \d+ INVITE", entry)]
    # The first INVITE's answer and the second re-INVITE's: PCMU, though PCMA came first.
    formats = [re.findall(r"m=audio \d+ RTP/AVP ([0-9 ]+)", answer) for answer in answers]
    assert formats == [["0 101"]] * 2, seen
    phone.wait_for("call_state", _state("DISCONNECTED"), timeout=10)  # the provider's BYE


def _hours_excluding_now() -> str:
    """Daily opening hours of one hour, six hours away from now (UTC): closed now whatever the time."""
    start = (datetime.now(UTC).hour + 6) % 24
    return f"daily {start:02d}:00-{(start + 1) % 24:02d}:00"


def test_a_did_outside_its_hours_lands_on_its_closed_destination(
        pbx_server: PbxServer, phone: Pjsua2Phone, tmp_path: Path) -> None:
    provider_port = free_port()
    pbx_server.add_user("1002")
    _add_trunk(pbx_server, "provider", provider_port)
    hours = _hours_excluding_now()
    _cli(pbx_server, "did", "add", "0140000000", "--destination", "1002", "--hours", hours,
         "--timezone", "UTC", "--closed-destination", "1001")
    listing = _cli(pbx_server, "did", "list").stdout
    assert hours in listing and "1001" in listing
    time.sleep(CATALOG_WAIT)

    _call_from_provider(pbx_server, phone, provider_port, "0140000000", tmp_path)

    assert _log_line(pbx_server,
                     "to DID 0140000000: goes to 1001 (outside its hours: its closed destination)")


def test_bad_did_hours_are_refused_naming_them(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    pbx("init", "--data-dir", data_dir)
    pbx("user", "add", "1001", "--password=s3cret-phone", "--data-dir", data_dir)
    refused = pbx("did", "add", "0140000000", "--destination", "1001", "--hours", "mon-fry 09:00-17:00",
                  "--closed-destination", "1001", "--data-dir", data_dir, check=False)
    assert refused.returncode != 0
    assert "DID 0140000000: hours 'mon-fry 09:00-17:00': 'mon-fry' is not a day" in refused.stderr
    assert "no DIDs" in pbx("did", "list", "--data-dir", data_dir).stdout


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_with_two_workers_trunk_list_merges_their_registrations_and_probes(
        tmp_path: Path, redis_server: RedisServer) -> None:
    provider_port, silent_port = distinct_ports(2)
    with running_pbx(tmp_path / "data", workers_env(redis_server)) as pbx_server:
        registrar, stat = _provider("trunk_registrar", tmp_path, 1, provider_port)
        _add_trunk(pbx_server, "provider", provider_port, "--username", "acme", "--password", "s3cret-trunk",
                   "--register")
        _add_trunk(pbx_server, "silent", silent_port, "--probe-interval", "1")
        assert sipp.finish(registrar, stat, timeout=30).successful == 1
        # One worker holds the registration, both probe the silent trunk: one line each, merged.
        listing = _wait_for_listing(pbx_server, "down: no answer", timeout=15.0)
        listing = _wait_for_listing(pbx_server, "registered (200", timeout=5.0)
    provider_line = next(line for line in listing.splitlines() if line.startswith("provider "))
    silent_line = next(line for line in listing.splitlines() if line.startswith("silent "))
    assert "registered (200" in provider_line and provider_line.rstrip().endswith("off")
    assert silent_line.rstrip().endswith("down: no answer")
