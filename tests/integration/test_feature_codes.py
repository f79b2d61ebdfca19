"""Feature codes from pjsua2 phones in `pbx allinone` (issue 13).

1002 dials *78: the IVR server answers, 1002 hears the confirmation (its two notes in 1002's
recording) and is hung up, and do-not-disturb is on in the system of record; 1001's call to
1002 is then refused busy (486). *79 turns it off: 1002 rings again. *721005 forwards 1002's
calls always to 1005: 1005 rings, 1002 does not. The tenant's do-not-disturb code changed to
*98 while the PBX runs (`pbx tenant set --feature-code`): *78 is then no feature code (404),
*98 is. *72 alone asks for the number, which 1002 keys in. The Call Manager reads forwarding
and the tenants' codes within 10 s: the test waits that long where a change must be seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received

pytestmark = pytest.mark.integration

USERS = ("1001", "1002", "1005")
CACHE_SECONDS = 11.5
"""How long the Call Manager may go on with what it read of forwarding and feature codes (10 s,
read again at its next second)."""
CONFIRMATION_HZ = (880.0, 1320.0)
"""The confirmation's notes, one after the other (`features.application.CONFIRMATION`)."""
HEARD = 1000.0
"""Amplitude above which a note is heard (it is sent at 6000)."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxServer]:
    with running_pbx(tmp_path / "data") as server:
        for extension in USERS:
            server.add_user(extension)
        yield server


@pytest.fixture
def phones(server: PbxServer, tmp_path: Path) -> Iterator[dict[str, Pjsua2Phone]]:
    made: dict[str, Pjsua2Phone] = {}
    try:
        for user in USERS:
            made[user] = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address,
                                     port=free_port(), domain=server.domain,
                                     record=tmp_path / f"heard-{user}.wav")
            assert made[user].register()["code"] == 200
        yield made
    finally:
        for phone in made.values():
            phone.close()


def forwarding(server: PbxServer) -> str:
    return pbx("user", "forward", "1002", "--data-dir", str(server.data_dir)).stdout.strip()


def dial_feature(phone: Pjsua2Phone, server: PbxServer, code: str, index: int, *,
                 digits: str = "") -> int:
    """`phone` dials `code` (then keys in `digits`): answered, told, and hung up by the IVR
    server; the RTP packets it received in the call's first second (what it was told)."""
    phone.send("call", uri=f"sip:{code}@{server.address}")
    answered = phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] in (
        "CONFIRMED", "DISCONNECTED"), timeout=10)
    assert answered["state"] == "CONFIRMED", answered
    before = int(phone.gap()["rx_packets"])  # the phone's count of all its calls' packets
    time.sleep(1.0)
    told = int(phone.gap()["rx_packets"]) - before
    if digits:
        phone.dtmf(digits)
    phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] == "DISCONNECTED", timeout=20)
    return told


def call_outcome(caller: Pjsua2Phone, server: PbxServer, index: int, *watched: Pjsua2Phone) -> object:
    """1001 calls 1002 (its call `index`): the final status when it is refused, else the user of
    the phone of `watched` that rang (the caller then hangs up)."""
    seen_before = {phone.user: len(phone.seen()) for phone in watched}
    caller.send("call", uri=f"sip:1002@{server.address}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for phone in watched:
            if any(e.get("event") == "incoming" for e in phone.seen()[seen_before[phone.user]:]):
                caller.send("hangup")
                caller.wait_for("call_state", lambda e: e["index"] == index and e["state"] == "DISCONNECTED")
                return phone.user
        refused = [e for e in caller.seen() if e.get("event") == "call_state" and e["index"] == index
                   and e["state"] == "DISCONNECTED"]
        if refused:
            return refused[0]["code"]
        time.sleep(0.1)
    raise AssertionError(f"call {index} from 1001: neither refused nor ringing")


def test_forwarding_and_do_not_disturb_from_the_phone(server: PbxServer, tmp_path: Path,
                                                      phones: dict[str, Pjsua2Phone]) -> None:
    caller, user, colleague = phones["1001"], phones["1002"], phones["1005"]

    # 1002's calls are numbered in the order they are made or arrive: 2 is 1001's call.
    told = [dial_feature(user, server, "*78", 0)]
    assert forwarding(server) == "1002@pbx.local: do not disturb"
    assert call_outcome(caller, server, 0, user) == 486

    told.append(dial_feature(user, server, "*79", 1))
    assert forwarding(server) == "1002@pbx.local: no forwarding"
    time.sleep(CACHE_SECONDS)
    assert call_outcome(caller, server, 1, user, colleague) == "1002"
    user.wait_for("call_state", lambda e: e["index"] == 2 and e["state"] == "DISCONNECTED", timeout=10)

    told.append(dial_feature(user, server, "*721005", 3))
    assert forwarding(server) == "1002@pbx.local: always -> 1005"
    time.sleep(CACHE_SECONDS)
    assert call_outcome(caller, server, 2, user, colleague) == "1005"

    pbx("tenant", "set", "pbx.local", "--feature-code", "dnd_on=*98", "--data-dir", str(server.data_dir))
    time.sleep(CACHE_SECONDS)
    user.send("call", uri=f"sip:*78@{server.address}")
    refused = user.wait_for("call_state", lambda e: e["index"] == 4 and e["state"] == "DISCONNECTED",
                            timeout=10)
    assert refused["code"] == 404, refused  # no longer a feature code: a number nobody has
    told.append(dial_feature(user, server, "*98", 5))
    assert forwarding(server) == "1002@pbx.local: always -> 1005, do not disturb"

    # *72 alone asks for the number: keyed in (RFC 4733 digits), ended by #.
    told.append(dial_feature(user, server, "*72", 6, digits="1001#"))
    assert forwarding(server) == "1002@pbx.local: always -> 1001, do not disturb"
    user.close()

    # Each time, 1002 was told (50 packets a second from the IVR server, its first second), and
    # its recording holds the confirmation's two notes in order (the start of a call's audio may
    # be lost to its recording: one of them may be missed).
    print(f"RTP packets in the first second of each feature call: {told}")
    assert all(packets >= 25 for packets in told), told
    audio = received(tmp_path / "heard-1002.wav")
    step, size = RATE // 20, RATE // 10  # 0.1 s windows every 0.05 s: each note lasts 0.12 s
    low, high = ([level_at(audio[start:start + size], hz) > HEARD
                  for start in range(0, len(audio) - size, step)] for hz in CONFIRMATION_HZ)
    starts = [i for i in range(1, len(low) - 3) if low[i] and not low[i - 1] and any(high[i + 2:i + 4])]
    print(f"1002 heard the confirmation {len(starts)} times, at "
          f"{[round(i * step / RATE, 1) for i in starts]} s of its recording")
    assert len(told) - 2 <= len(starts) <= len(told)
