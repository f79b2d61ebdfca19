"""Attended and blind transfer end to end: three pjsua2 phones and `pbx allinone`.

1001 calls 1002, who answers; 1002 calls 1003, who answers; 1002 transfers 1001 to 1003 with
Replaces (pjsua2's `Call.xferReplaces`: a REFER on its call with 1001 whose Refer-To replaces
its call with 1003). The Call Manager joins them: 1001 and 1003 then hear each other's tone
(each phone sends a tone of its own; the frequencies in a recording say whom it heard) and
1002 is hung up on both calls. Blind: 1001 calls 1002, who answers and transfers 1001 to 1003
with a plain REFER (pjsua2's `Call.xfer`); 1003 rings and answers, and 1001 and 1003 talk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received
from tests.integration.test_queue_calls import tone_phones

pytestmark = pytest.mark.integration

TONES = {"1001": 500.0, "1002": 1200.0, "1003": 1700.0}
HEARD = 1000.0
"""Amplitude above which a tone is heard in a recording (each is sent at 6000)."""
SILENT = 200.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxServer]:
    with running_pbx(tmp_path / "data") as server:
        for extension in TONES:
            server.add_user(extension)
        yield server


@pytest.fixture
def phones(server: PbxServer, tmp_path: Path) -> Iterator[dict[str, Pjsua2Phone]]:
    with tone_phones(server, tmp_path, TONES) as made:
        yield made


def heard(tmp_path: Path, user: str, start: float, end: float) -> dict[str, float]:
    """The level of each phone's tone in what `user` heard between `start` and `end` seconds
    before the end of its recording."""
    audio = received(tmp_path / f"heard-{user}.wav")
    window = audio[max(0, len(audio) - int(start * RATE)):len(audio) - int(end * RATE)]
    return {other: round(level_at(window, frequency)) for other, frequency in TONES.items()}


def confirmed(phone: Pjsua2Phone, index: int) -> None:
    state = phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] in (
        "CONFIRMED", "DISCONNECTED"))
    assert state["state"] == "CONFIRMED", state


def answer_when_rung(phone: Pjsua2Phone) -> None:
    phone.wait_for("incoming")
    time.sleep(0.3)  # it rings, as a person's phone does
    phone.send("answer")


def test_the_transferor_joins_its_two_calls_and_leaves(server: PbxServer, tmp_path: Path,
                                                       phones: dict[str, Pjsua2Phone]) -> None:
    alice, bob, carol = phones["1001"], phones["1002"], phones["1003"]
    alice.send("call", uri=f"sip:1002@{server.address}")
    answer_when_rung(bob)
    confirmed(alice, 0)
    confirmed(bob, 0)
    bob.send("call", uri=f"sip:1003@{server.address}")
    answer_when_rung(carol)
    confirmed(bob, 1)
    confirmed(carol, 0)
    time.sleep(1.5)

    bob.send("xfer_replaces", call=0, dest=1)

    final = bob.wait_for("xfer_status", lambda e: e["final"])
    assert final["code"] == 200, final
    gone = {bob.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")["index"] for _ in range(2)}
    assert gone == {0, 1}
    time.sleep(3.0)
    alice.send("hangup")
    carol.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    alice.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    for phone in phones.values():
        phone.close()

    # The last 2.5 s before the hang-up: Alice and Carol hear each other, and no more Bob.
    alice_heard, carol_heard = heard(tmp_path, "1001", 3.0, 0.5), heard(tmp_path, "1003", 3.0, 0.5)
    print(f"after the join: 1001 heard {alice_heard}, 1003 heard {carol_heard}")
    assert alice_heard["1003"] > HEARD and alice_heard["1002"] < SILENT, alice_heard
    assert carol_heard["1001"] > HEARD and carol_heard["1002"] < SILENT, carol_heard
    cdrs = server.wait_for_cdrs(2)
    assert [(row["caller"], row["callee"]) for row in cdrs] == [("1002", "1003"), ("1001", "1002")]


def test_a_blind_transfer_rings_the_target_and_joins_it_to_the_transferee(
        server: PbxServer, tmp_path: Path, phones: dict[str, Pjsua2Phone]) -> None:
    alice, bob, carol = phones["1001"], phones["1002"], phones["1003"]
    alice.send("call", uri=f"sip:1002@{server.address}")
    answer_when_rung(bob)
    confirmed(alice, 0)
    time.sleep(1.0)

    bob.send("xfer", call=0, uri=f"sip:1003@{server.address}")

    answer_when_rung(carol)
    confirmed(carol, 0)
    final = bob.wait_for("xfer_status", lambda e: e["final"], timeout=15)
    assert final["code"] == 200, final
    bob.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    time.sleep(3.0)
    alice.send("hangup")
    carol.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    for phone in phones.values():
        phone.close()

    alice_heard, carol_heard = heard(tmp_path, "1001", 3.0, 0.5), heard(tmp_path, "1003", 3.0, 0.5)
    print(f"after the blind transfer: 1001 heard {alice_heard}, 1003 heard {carol_heard}")
    print("".join(line for line in server.log_lines if "transfer" in line or "WARNING" in line)[-4000:])
    assert alice_heard["1003"] > HEARD and alice_heard["1002"] < SILENT, alice_heard
    assert carol_heard["1001"] > HEARD and carol_heard["1002"] < SILENT, carol_heard
