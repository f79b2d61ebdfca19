"""Two pjsua2 softphones register with their passwords and call each other through the all-in-one PBX."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port
from tests.integration.peers.baresip_phone import MODULE_PATH, SAMPLE_RATE, BaresipPhone
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


STOCK = None
"""`codecs=STOCK`: pjsua2's own codec list and priorities (speex at three rates, iLBC, GSM,
G.711, G.722), as a phone out of the box offers them."""
RING_SECONDS = 1.0


@pytest.mark.parametrize(("caller_codecs", "callee_codecs"), [
    (STOCK, STOCK),
    ("G722", "PCMU"),
    ("PCMU", "G722"),
    (STOCK, "G722"),
    ("G722", STOCK),
])
def test_phones_with_their_own_codec_lists_connect_after_ringing(pbx_server: PbxServer,
                                                                 caller_codecs: str | None,
                                                                 callee_codecs: str | None) -> None:
    """Issue 8: the callee rings (180 without SDP: the media server answers the caller itself and
    plays it ringback), then answers after a second. The caller gets 200 and audio goes both
    ways, in one codec when the phones share one, else transcoded."""
    phones = [Pjsua2Phone(user=extension, password=pbx_server.add_user(extension), server=pbx_server.address,
                          port=free_port(), codecs=codecs)
              for extension, codecs in (("1001", caller_codecs), ("1002", callee_codecs))]
    caller, callee = phones
    try:
        for phone in phones:
            assert phone.register()["code"] == 200
        caller.send("call", uri=f"sip:{callee.user}@{pbx_server.address}")
        callee.wait_for("incoming")
        assert caller.wait_for("call_state", _state("EARLY"))["code"] == 180
        time.sleep(RING_SECONDS)
        callee.send("answer", code=200)
        outcome = caller.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
        assert (outcome["state"], outcome["code"]) == ("CONFIRMED", 200), outcome
        callee.wait_for("call_state", _state("CONFIRMED"))
        time.sleep(2)
        assert caller.stats()["rx_packets"] >= 50
        assert callee.stats()["rx_packets"] >= 50
        codecs = caller.media_info()["codec"], callee.media_info()["codec"]
        if caller_codecs == callee_codecs:
            assert codecs[0] == codecs[1], f"two phones with the same codecs are transcoded: {codecs}"
        else:
            assert codecs == (caller_codecs or codecs[0], callee_codecs or codecs[1])
        callee.send("hangup")
        caller.wait_for("call_state", _state("DISCONNECTED"))
    finally:
        for phone in phones:
            phone.close()
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["sip_code"]) == ("ANSWERED", 200)


# The pjsua2 wheel has no Opus: an Opus-only phone is baresip with its opus module. baresip 1.0
# fails on a challenge set that holds any SHA-256 challenge, so the PBX offers MD5 alone.
@pytest.mark.skipif(shutil.which("baresip") is None or not Path(f"{MODULE_PATH}/opus.so").exists(),
                    reason="baresip with its opus module is not installed")
@pytest.mark.pbx_env(PBX_AUTH__ALGORITHMS="MD5")
@pytest.mark.parametrize("opus_calls", [True, False], ids=["opus phone calls", "opus phone is called"])
def test_an_opus_only_phone_and_a_stock_pjsua2_connect_after_ringing(pbx_server: PbxServer,
                                                                     opus_calls: bool) -> None:
    opus = BaresipPhone(user="1001", password=pbx_server.add_user("1001"), server=pbx_server.address,
                        port=free_port(pair_spacing=2), codecs="opus")
    pjsua = Pjsua2Phone(user="1002", password=pbx_server.add_user("1002"), server=pbx_server.address,
                        port=free_port(), codecs=STOCK)
    try:
        assert opus.register()["type"] == "REGISTER_OK"
        assert pjsua.register()["code"] == 200
        if opus_calls:
            opus.call(f"sip:{pjsua.user}@{pbx_server.address}")
            pjsua.wait_for("incoming")
            opus.wait_for(("CALL_RINGING", "CALL_PROGRESS"))  # PROGRESS: the 180 carries SDP
            time.sleep(RING_SECONDS)
            pjsua.send("answer", code=200)
        else:
            pjsua.send("call", uri=f"sip:{opus.user}@{pbx_server.address}")
            opus.wait_for("CALL_INCOMING")
            assert pjsua.wait_for("call_state", _state("EARLY"))["code"] == 180
            time.sleep(RING_SECONDS)
            opus.answer()
        established = opus.wait_for(("CALL_ESTABLISHED", "CALL_CLOSED"))
        assert established["type"] == "CALL_ESTABLISHED", established
        outcome = pjsua.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
        assert (outcome["state"], outcome["code"]) == ("CONFIRMED", 200), outcome
        time.sleep(2)
        assert pjsua.stats()["rx_packets"] >= 50
        assert opus.received_audio_frames() > SAMPLE_RATE  # over a second of audio, at 8 kHz or more
        assert "Set audio encoder: opus" in opus.log_tail(200)
        assert pjsua.media_info()["codec"] in ("PCMU", "PCMA", "G722")  # transcoded from Opus
        pjsua.send("hangup")
        opus.wait_for("CALL_CLOSED")
    finally:
        pjsua.close()
        opus.close()
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["sip_code"]) == ("ANSWERED", 200)


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
