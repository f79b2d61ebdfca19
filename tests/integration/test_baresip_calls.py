"""baresip (headless) as one of the phones, through the all-in-one PBX."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.integration.conftest import PbxServer, free_port
from tests.integration.peers.baresip_phone import SAMPLE_RATE, BaresipPhone, assert_heard_the_tone
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

# baresip 1.0 (libre 1.x) fails with ENOSYS on a challenge set that holds any SHA-256
# challenge, so these PBXs offer MD5 alone, as an operator with such phones would.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed"),
    pytest.mark.pbx_env(PBX_AUTH__ALGORITHMS="MD5"),
]


def test_baresip_calls_pjsua2_and_the_callee_hangs_up(pbx_server: PbxServer) -> None:
    baresip = BaresipPhone(user="1001", password=pbx_server.add_user("1001"), server=pbx_server.address,
                           port=free_port(pair_spacing=2))
    pjsua = Pjsua2Phone(user="1002", password=pbx_server.add_user("1002"), server=pbx_server.address,
                        port=free_port(), auto_answer=True)
    try:
        assert baresip.register()["type"] == "REGISTER_OK"
        assert pjsua.register()["code"] == 200
        baresip.call(f"sip:1002@{pbx_server.address}")
        assert "1002@" in baresip.wait_for("CALL_ESTABLISHED")["peeruri"]
        pjsua.wait_for("call_state", lambda e: e["state"] == "CONFIRMED")
        time.sleep(2)
        assert baresip.received_audio_frames() > SAMPLE_RATE
        assert pjsua.stats()["rx_packets"] >= 50
        pjsua.send("hangup")
        baresip.wait_for("CALL_CLOSED")
    finally:
        pjsua.close()
        baresip.close()
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"], cdr["hangup_by"]) == (
        "1001", "1002", "ANSWERED", "callee")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_two_baresip_phones_hear_each_others_tone(pbx_server: PbxServer, transport: str) -> None:
    phones = [BaresipPhone(user=ext, password=pbx_server.add_user(ext), server=pbx_server.address,
                           port=free_port(pair_spacing=2), transport=transport, auto_answer=ext == "1002")
              for ext in ("1001", "1002")]
    caller, callee = phones
    try:
        for phone in phones:
            assert phone.register()["type"] == "REGISTER_OK"
        caller.call(f"sip:1002@{pbx_server.address}")
        caller.wait_for("CALL_ESTABLISHED")
        callee.wait_for("CALL_ESTABLISHED")
        time.sleep(2)
        caller.hangup()
        caller.wait_for("CALL_CLOSED")
        callee.wait_for("CALL_CLOSED")
        assert_heard_the_tone(callee)
        assert_heard_the_tone(caller)
    finally:
        for phone in phones:
            phone.close()
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["hangup_by"]) == ("ANSWERED", "caller")
