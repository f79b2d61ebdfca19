"""Two pjsua2 softphones register with their passwords and call each other through the all-in-one PBX."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import PbxServer, free_port
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

pytestmark = pytest.mark.integration

Phones = tuple[Pjsua2Phone, Pjsua2Phone]


def _state(name: str):  # noqa: ANN202 - a predicate for wait_for
    return lambda event: event["state"] == name


@pytest.fixture
def phones(pbx_server: PbxServer, request: pytest.FixtureRequest) -> Iterator[Phones]:
    transport = getattr(request, "param", "udp")
    started: list[Pjsua2Phone] = []
    try:
        for extension in ("1001", "1002"):
            password = pbx_server.add_user(extension)
            started.append(Pjsua2Phone(user=extension, password=password, server=pbx_server.address,
                                       port=free_port(), transport=transport))
        for phone in started:
            assert phone.register()["code"] == 200
        yield started[0], started[1]
    finally:
        for phone in started:
            phone.close()


def _call_and_answer(caller: Pjsua2Phone, callee: Pjsua2Phone, pbx_server: PbxServer) -> None:
    caller.send("call", uri=f"sip:{callee.user}@{pbx_server.address}")
    incoming = callee.wait_for("incoming")
    assert f"{caller.user}@" in incoming["remote_uri"]
    assert caller.wait_for("call_state", _state("EARLY"))["code"] == 180
    callee.send("answer", code=200)
    assert caller.wait_for("call_state", _state("CONFIRMED"))["code"] == 200
    callee.wait_for("call_state", _state("CONFIRMED"))


@pytest.mark.parametrize("phones", ["udp", "tcp"], indirect=True)
def test_call_is_answered_carries_rtp_and_leaves_a_cdr(phones: Phones,
                                                      pbx_server: PbxServer) -> None:
    caller, callee = phones
    _call_and_answer(caller, callee, pbx_server)
    time.sleep(2)
    # 20 ms packets both ways: about 100 in 2 s; RTP flows phone to phone in this issue.
    assert caller.stats()["rx_packets"] >= 50
    assert callee.stats()["rx_packets"] >= 50
    callee.send("hangup")
    assert callee.wait_for("call_state", _state("DISCONNECTED"))
    assert caller.wait_for("call_state", _state("DISCONNECTED"))
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"], cdr["hangup_by"], cdr["sip_code"]) == (
        "1001", "1002", "ANSWERED", "callee", 200)
    assert cdr["answer_time"] is not None and cdr["duration"] >= 2


def test_caller_hangs_up_while_ringing(phones: Phones, pbx_server: PbxServer) -> None:
    caller, callee = phones
    caller.send("call", uri=f"sip:{callee.user}@{pbx_server.address}")
    callee.wait_for("incoming")
    caller.wait_for("call_state", _state("EARLY"))
    caller.send("hangup")  # a CANCEL while ringing
    assert caller.wait_for("call_state", _state("DISCONNECTED"))["code"] == 487
    assert callee.wait_for("call_state", _state("DISCONNECTED"))["code"] == 487
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["sip_code"], cdr["answer_time"]) == ("CANCELLED", 487, None)


def test_busy_callee_gives_486(phones: Phones, pbx_server: PbxServer) -> None:
    caller, callee = phones
    caller.send("call", uri=f"sip:{callee.user}@{pbx_server.address}")
    callee.wait_for("incoming")
    callee.send("answer", code=486)
    assert caller.wait_for("call_state", _state("DISCONNECTED"))["code"] == 486
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["sip_code"]) == ("BUSY", 486)


def test_unknown_and_unregistered_extensions(phones: Phones,
                                             pbx_server: PbxServer) -> None:
    caller, _ = phones
    caller.send("call", uri=f"sip:4999@{pbx_server.address}")
    assert caller.wait_for("call_state", _state("DISCONNECTED"))["code"] == 404
    pbx_server.add_user("1003")  # exists, but no phone registered
    caller.send("call", uri=f"sip:1003@{pbx_server.address}")
    assert caller.wait_for("call_state", _state("DISCONNECTED"))["code"] == 480


def test_hold_and_resume_with_reinvite(phones: Phones, pbx_server: PbxServer) -> None:
    caller, callee = phones
    _call_and_answer(caller, callee, pbx_server)
    caller.send("hold")
    assert caller.wait_for("media", lambda e: e["local_hold"])
    assert callee.wait_for("media", lambda e: e["remote_hold"])
    caller.send("unhold")
    assert caller.wait_for("media", lambda e: e["active"])
    assert callee.wait_for("media", lambda e: e["active"])
    time.sleep(1)
    before = callee.stats()["rx_packets"]
    time.sleep(1)
    assert callee.stats()["rx_packets"] > before + 25
    caller.send("hangup")  # BYE from the caller this time
    assert callee.wait_for("call_state", _state("DISCONNECTED"))
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert cdr["hangup_by"] == "caller"


@pytest.mark.pbx_env(PBX_AUTH__ALGORITHMS="MD5")
def test_md5_only_server(phones: Phones, pbx_server: PbxServer) -> None:
    """The same phones with MD5 digest alone (the default offers SHA-256 first, which pjsua2 picks)."""
    caller, callee = phones
    _call_and_answer(caller, callee, pbx_server)
    caller.send("hangup")
    assert callee.wait_for("call_state", _state("DISCONNECTED"))


def test_wrong_password_is_refused(pbx_server: PbxServer) -> None:
    pbx_server.add_user("1001", "right-password")
    phone = Pjsua2Phone(user="1001", password="wrong-password", server=pbx_server.address, port=free_port())
    try:
        assert phone.register()["code"] in (401, 403)
    finally:
        phone.close()
