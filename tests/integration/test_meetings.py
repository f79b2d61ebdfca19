"""Meetings in the all-in-one's meeting server, with pjsua2 phones dialling rooms through the
Call Manager: who hears whom (each phone sends its own tone; the frequencies each receives
say whom it hears), PINs, mute, the recording, a G.722 phone with a PCMU one, the
announcements of a full, a locked and an unknown room, and a meeting controlled from
`pbx meeting participants|mute|record|lock|kick` (issue 12)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from pbx_services.cluster.config import sqlite_url_for
from pbx_services.cluster.control_client import control_request
from pbx_services.cluster.database import create_engine_for
from pbx_services.cluster.models import MeetingRoom, Tenant
from pbx_services.rtp.wav import read_wav, write_wav
from pbx_services.runtime.control import ControlReply
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received, tone

pytestmark = pytest.mark.integration

TONES = {"1001": 500.0, "1002": 1200.0, "1003": 1700.0, "1004": 2300.0}
"""Each phone's own tone: away from the entry tones (660, 880 Hz) and from one another."""
HEARD = 1000.0
"""Amplitude above which a tone is heard in a recording (each is sent at 6000; the meeting
levels talkers to about 4700)."""
SILENT = 150.0


def add_room(data_dir: Path, number: str, **fields: Any) -> None:
    """A room straight into the database (`pbx meeting`'s own tests cover the CLI)."""
    engine = create_engine_for(sqlite_url_for(data_dir))
    with Session(engine) as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.domain == "pbx.local")).one()
        session.add(MeetingRoom(tenant_id=tenant.id, number=number, **{"max_participants": 50, "pin_tries": 3,
                                                                        **fields}))
    engine.dispose()


@pytest.fixture
def meeting_pbx(tmp_path: Path) -> Iterator[PbxServer]:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    add_room(data_dir, "850")
    add_room(data_dir, "851", pin="1234", moderator_pin="4321", pin_tries=2)
    add_room(data_dir, "852", max_participants=2)
    add_room(data_dir, "853", record=True)
    with running_pbx(data_dir) as server:
        for extension in TONES:
            server.add_user(extension)
        yield server


@contextlib.contextmanager
def phones(server: PbxServer, tmp_path: Path, users: list[str],
           **options: Any) -> Iterator[list[Pjsua2Phone]]:
    """Registered phones, each sending its tone and recording what it hears (complete once closed)."""
    made = []
    try:
        for user in users:
            tone_wav = tmp_path / f"tone-{user}.wav"
            write_wav(tone_wav, RATE, tone(TONES[user], 5.0, level=6000))
            made.append(Pjsua2Phone(user=user, password=server.passwords[user], server=server.address,
                                    port=free_port(), domain=server.domain, play=tone_wav,
                                    record=tmp_path / f"heard-{user}.wav", **options.get(user, {})))
            assert made[-1].register()["code"] == 200
        yield made
    finally:
        for phone in made:
            phone.close()


def join(phone: Pjsua2Phone, address: str, room: str, pin: str | None = None) -> None:
    """`phone` calls `room` at the PBX's `address` and enters the PIN once answered."""
    phone.send("call", uri=f"sip:{room}@{address}")
    state = phone.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
    assert state["state"] == "CONFIRMED", state
    if pin is not None:
        time.sleep(0.5)
        phone.dtmf(pin + "#")


def heard_lately(tmp_path: Path, user: str, seconds: float = 2.0) -> dict[str, float]:
    """The tones `user` heard in the last `seconds` (less the last half second, the hang-up)."""
    audio = received(tmp_path / f"heard-{user}.wav")
    end = len(audio) - RATE // 2
    window = audio[max(0, end - int(seconds * RATE)):end]
    return {other: level_at(window, frequency) for other, frequency in TONES.items()}


def disconnected(phone: Pjsua2Phone, timeout: float = 20.0) -> float:
    """Seconds until the PBX hung the phone up."""
    started = time.monotonic()
    phone.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=timeout)
    return time.monotonic() - started


def meet(server: PbxServer, tmp_path: Path, users: list[str], room: str, seconds: float) -> None:
    """`users` in `room` together for `seconds`, then hung up (their recordings complete)."""
    with phones(server, tmp_path, users) as devices:
        for device in devices:
            join(device, server.address, room)
        time.sleep(seconds)
        for device in devices:
            device.send("hangup")
            disconnected(device)


def test_three_phones_each_hear_the_other_two_and_not_themselves(meeting_pbx: PbxServer,
                                                                 tmp_path: Path) -> None:
    users = ["1001", "1002", "1003"]
    meet(meeting_pbx, tmp_path, users, "850", 3)
    for user in users:
        levels = heard_lately(tmp_path, user)
        others = [u for u in users if u != user]
        print(f"{user} hears {({u: round(v) for u, v in levels.items()})}")
        assert all(levels[u] > HEARD for u in others), (user, levels)
        assert levels[user] < SILENT, (user, levels)


def seconds_heard(tmp_path: Path, user: str, other: str) -> float:
    """For how long `user` heard `other`'s tone: 100 ms windows of its recording where it is loud."""
    audio = received(tmp_path / f"heard-{user}.wav")
    step = RATE // 10
    windows = [audio[start:start + step] for start in range(0, len(audio) - step, step)]
    return sum(0.1 for window in windows if level_at(window, TONES[other]) > HEARD)


def test_wrong_pins_are_refused_after_the_rooms_tries_and_a_moderator_ends_the_meeting(
        meeting_pbx: PbxServer, tmp_path: Path) -> None:
    with phones(meeting_pbx, tmp_path, ["1001", "1002", "1003"]) as (guesser, moderator, member):
        join(guesser, meeting_pbx.address, "851", pin="9999")
        time.sleep(3)
        guesser.dtmf("1111#")
        hung_up_after = disconnected(guesser)
        join(moderator, meeting_pbx.address, "851", pin="4321")
        join(member, meeting_pbx.address, "851", pin="1234")
        time.sleep(3)
        moderator.dtmf("9")  # a moderator ends the meeting for everyone
        disconnected(member)
        disconnected(moderator)
    print(f"wrong PINs: hung up {hung_up_after:.1f} s after the second one")
    guesser_heard = received(tmp_path / "heard-1001.wav")
    assert np.abs(guesser_heard).mean() > 200  # the prompts were heard, not silence
    assert 1.0 < hung_up_after < 10
    assert seconds_heard(tmp_path, "1003", "1002") > 1.5  # in with the PIN, heard the moderator
    assert seconds_heard(tmp_path, "1002", "1003") > 1.5


def test_a_muted_participant_is_not_heard_and_still_hears(meeting_pbx: PbxServer, tmp_path: Path) -> None:
    with phones(meeting_pbx, tmp_path, ["1001", "1002", "1003"]) as devices:
        for device in devices:
            join(device, meeting_pbx.address, "850")
        time.sleep(2)
        devices[0].dtmf("1")  # 1001 mutes itself ("you are muted" plays to it)
        time.sleep(4)
        for device in devices:
            device.send("hangup")
    for user in ("1002", "1003"):
        levels = heard_lately(tmp_path, user)
        assert levels["1001"] < SILENT, (user, levels)  # muted
        assert levels["1002" if user == "1003" else "1003"] > HEARD, (user, levels)
    muted_heard = heard_lately(tmp_path, "1001")
    assert muted_heard["1002"] > HEARD and muted_heard["1003"] > HEARD, muted_heard


def test_the_recording_holds_the_mix(meeting_pbx: PbxServer, tmp_path: Path) -> None:
    users = ["1001", "1002", "1003"]
    meet(meeting_pbx, tmp_path, users, "853", 4)
    [recording] = (meeting_pbx.data_dir / "recordings").glob("meeting-853@pbx.local-*.wav")
    audio = read_wav(recording)
    samples = audio.samples.astype(np.float64)
    last = samples[-3 * RATE:-RATE // 2]  # when all three were in
    levels = {user: level_at(last, TONES[user]) for user in users}
    print(f"recording {recording.name}: {len(samples) / RATE:.1f} s, tones {levels}")
    assert all(level > HEARD for level in levels.values()), levels
    # Each participant's CDR names the meeting's recording.
    assert [cdr["recording"] for cdr in meeting_pbx.wait_for_cdrs(3)] == [str(recording)] * 3


def test_a_g722_phone_and_a_pcmu_phone_hear_each_other(meeting_pbx: PbxServer, tmp_path: Path) -> None:
    codecs = {"1001": {"codecs": "G722"}, "1002": {"codecs": "PCMU"}}
    with phones(meeting_pbx, tmp_path, ["1001", "1002"], **codecs) as devices:
        for device in devices:
            join(device, meeting_pbx.address, "850")
        time.sleep(3)
        used = [device.media_info()["codec"] for device in devices]
        for device in devices:
            device.send("hangup")
    assert used[0].startswith("G722") and used[1].startswith("PCMU"), used
    assert heard_lately(tmp_path, "1001")["1002"] > HEARD
    assert heard_lately(tmp_path, "1002")["1001"] > HEARD


def test_a_full_room_and_a_locked_room_announce_and_hang_up(meeting_pbx: PbxServer, tmp_path: Path) -> None:
    with phones(meeting_pbx, tmp_path, ["1001", "1002", "1003", "1004"]) as (first, second, third, fourth):
        join(first, meeting_pbx.address, "852")
        join(second, meeting_pbx.address, "852")
        join(third, meeting_pbx.address, "852")  # room 852 takes two
        full_after = disconnected(third)
        join(fourth, meeting_pbx.address, "851", pin="4321")  # the moderator of 851
        time.sleep(1)
        fourth.dtmf("3")  # locks it
        time.sleep(2)
        join(first, meeting_pbx.address, "851", pin="1234")
        locked_after = disconnected(first)
    print(f"full room: hung up after {full_after:.1f} s; locked room: after {locked_after:.1f} s")
    for user in ("1003", "1001"):
        assert np.abs(received(tmp_path / f"heard-{user}.wav")).mean() > 200  # an announcement, not silence
    assert 1.0 < full_after < 10


def test_a_room_that_is_gone_is_announced_not_silent(meeting_pbx: PbxServer, tmp_path: Path) -> None:
    """A call reaching a meeting server for a room deleted since (an IVR option, a stale route)."""
    health = meeting_pbx.health()
    [meeting] = [e for e in health["application_endpoints"] if e["role"] == "meeting"]
    # Straight to the meeting server, as the Call Manager would send it (no registration).
    caller = Pjsua2Phone(user="1001", password="-", server=meeting["address"], port=free_port(),
                         domain=meeting_pbx.domain, record=tmp_path / "heard-1001.wav")
    try:
        caller.send("call", uri=f"sip:859@{meeting_pbx.domain}")
        caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED")
        gone_after = disconnected(caller)
    finally:
        caller.close()
    assert np.abs(received(tmp_path / "heard-1001.wav")).mean() > 200
    assert 1.0 < gone_after < 10


def meeting_command(server: PbxServer, *args: str) -> subprocess.CompletedProcess[str]:
    return pbx("meeting", *args, "--data-dir", str(server.data_dir), check=False)


def test_the_cli_lists_mutes_records_locks_and_removes_participants(meeting_pbx: PbxServer,
                                                                     tmp_path: Path) -> None:
    with phones(meeting_pbx, tmp_path, ["1001", "1002", "1003", "1004"]) as (first, second, third, late):
        for device in (first, second, third):
            join(device, meeting_pbx.address, "850")
        time.sleep(2)
        listing = meeting_command(meeting_pbx, "participants", "850", "--json")
        assert listing.returncode == 0, listing.stderr
        meeting = json.loads(listing.stdout)
        people = {person["caller"]: person for person in meeting["participants"]}
        print(f"participants: {people}")
        assert meeting["server"] == "allinone-meeting" and sorted(people) == ["1001", "1002", "1003"]
        assert all(p["state"] == "in" and p["talking"] and p["muted"] is False for p in people.values())
        table = meeting_command(meeting_pbx, "participants", "850").stdout.splitlines()
        assert table[0].startswith("room 850 of pbx.local on meeting server allinone-meeting: started ")
        assert table[1].split() == ["#", "CALLER", "STATE", "MODERATOR", "MUTED", "TALKING"]

        muted = meeting_command(meeting_pbx, "mute", "850", str(people["1001"]["number"]))
        assert muted.returncode == 0, muted.stderr
        assert [line.split() for line in muted.stdout.splitlines() if " 1001 " in f" {line} "] == [
            [str(people["1001"]["number"]), "1001", "in", "no", "yes", "yes"]]
        recording = meeting_command(meeting_pbx, "record", "850")
        assert recording.returncode == 0 and "recording to " in recording.stdout, recording
        time.sleep(3)
        assert meeting_command(meeting_pbx, "record", "850", "--stop").returncode == 0
        assert meeting_command(meeting_pbx, "lock", "850").stdout.splitlines()[0].endswith(", locked")
        join(late, meeting_pbx.address, "850")
        locked_out_after = disconnected(late)

        kicked = meeting_command(meeting_pbx, "kick", "850", str(people["1003"]["number"]))
        assert kicked.returncode == 0, kicked.stderr
        kicked_after = disconnected(third)
        secret = yaml.safe_load((meeting_pbx.data_dir / "pbx.yml").read_text())["auth"]["secret"]
        bad = control_request("127.0.0.1", meeting_pbx.http_port, secret, "POST",
                              ["meetings", "pbx.local", "850", "participants", str(people["1002"]["number"]),
                               "mute"], {"muted": "yes"})
        assert bad == ControlReply(400, {"error": "'muted' must be true or false, not 'yes'"})
        unknown = meeting_command(meeting_pbx, "mute", "850", "99")
        assert (unknown.returncode, unknown.stderr) == (
            1, "pbx: meeting server allinone-meeting: no participant 99 in room 850\n")
        idle = meeting_command(meeting_pbx, "participants", "851")
        assert (idle.returncode, idle.stderr) == (1, "pbx: no meeting in progress in room 851 of pbx.local\n")
        time.sleep(1)
        for device in (first, second):
            device.send("hangup")
            disconnected(device)
    print(f"locked out after {locked_out_after:.1f} s, removed after {kicked_after:.1f} s")
    assert 1.0 < locked_out_after < 10 and 1.0 < kicked_after < 10
    assert np.abs(received(tmp_path / "heard-1003.wav")[-3 * RATE:]).mean() > 200  # "you have been removed"
    assert heard_lately(tmp_path, "1002")["1001"] < SILENT  # muted by the CLI
    assert seconds_heard(tmp_path, "1002", "1001") > 1.0  # and heard before
    [recorded] = (meeting_pbx.data_dir / "recordings").glob("meeting-850@pbx.local-*.wav")
    mix = read_wav(recorded).samples.astype(np.float64)
    levels = {user: level_at(mix, TONES[user]) for user in ("1001", "1002", "1003")}
    print(f"recording {recorded.name}: {len(mix) / RATE:.1f} s, tones {levels}")
    assert 2.0 < len(mix) / RATE < 8.0  # from "record" to "record --stop": 3 s and two commands
    assert levels["1002"] > HEARD and levels["1003"] > HEARD and levels["1001"] < SILENT, levels
