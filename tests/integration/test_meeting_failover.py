"""Ten meeting rooms over two meeting servers; one killed: its participants are back in their
rooms on the other within seconds, and new joins land on the survivor (issue 12). And a
meeting on a meeting server of its own: `pbx meeting` finds and controls it through the
server's control API (supervisor, then worker process), and its talkers are on the bus.

The Call Manager (`pbx allinone` without its embedded meeting server) keeps the rooms' homes
in a real Redis. Each meeting server is `pbx meeting --config` in a process group of its own,
killed as a whole with SIGKILL. Two pjsua2 phones per room, each sending its own tone: after
the kill each must still be in its call (the Call Manager moves the meeting server's leg;
the phones see no re-INVITE) and hear its partner again.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import yaml

from pbx_services.cluster.events import MeetingTalker
from pbx_services.cluster.redis_bus import read_events
from pbx_services.rtp.wav import write_wav
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received, tone
from tests.integration.test_ivr_failover import AppServerDaemon, endpoint_up
from tests.integration.test_meetings import HEARD, add_room, join
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

ROOMS = [str(860 + n) for n in range(10)]
MOVED_WITHIN = 10.0
"""Seconds from the kill to every participant back in a room: 2 missed probes (1 s apart),
then an INVITE to the survivor."""


Cluster = tuple[PbxServer, list[AppServerDaemon]]


def frequency(index: int) -> float:
    return 400.0 + 150.0 * index


def participants(daemon: AppServerDaemon) -> int:
    health = daemon.health()
    return sum(int(worker.get("participants", 0)) for worker in health.get("workers", []))  # type: ignore[union-attr]


def registered_phone(stack: ExitStack, server: PbxServer, user: str, hz: float, tmp_path: Path, *,
                     add: bool = True) -> Pjsua2Phone:
    """A phone of `user` (added first, unless `add` is false) sending a tone of `hz` and
    recording what it hears, closed with `stack`."""
    if add:
        server.add_user(user)
    wav = tmp_path / f"tone-{user}.wav"
    write_wav(wav, RATE, tone(hz, 5.0, level=6000))
    phone = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address, port=free_port(),
                        domain=server.domain, play=wav, record=tmp_path / f"heard-{user}.wav")
    stack.callback(phone.close)
    assert phone.register()["code"] == 200
    return phone


@pytest.fixture
def meeting_cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    for room in ROOMS:
        add_room(data_dir, room)
    # As Ansible deploys them: the cluster's secret (the control API's token) and its state store.
    secret = yaml.safe_load((data_dir / "pbx.yml").read_text())["auth"]["secret"]
    extra = {"auth": {"secret": secret}, "state": {"url": redis_server.url}}
    daemons = [AppServerDaemon(name, data_dir, tmp_path / f"{name}.yml", role="meeting", extra=extra)
               for name in ("meet1", "meet2")]
    for daemon in daemons:
        pbx("server", "add", daemon.name, "--role", "meeting", "--host", "127.0.0.1", "--port",
            str(daemon.sip_port), "--http-port", str(daemon.http_port), "--data-dir", str(data_dir))
    env = {"PBX_MEETING__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url}
    with ExitStack() as stack:
        for daemon in daemons:
            daemon.start()
            stack.callback(daemon.stop)
        server = stack.enter_context(running_pbx(data_dir, env))
        deadline = time.monotonic() + 15
        while not all(endpoint_up(server, d.name) for d in daemons):
            assert time.monotonic() < deadline, server.health()
            time.sleep(0.3)
        yield server, daemons


def test_a_killed_meeting_servers_rooms_move_to_the_other(meeting_cluster: Cluster, tmp_path: Path) -> None:
    server, daemons = meeting_cluster
    count = 2 * len(ROOMS)
    users = [str(3001 + n) for n in range(count + 1)]
    with ExitStack() as stack:
        phones = [registered_phone(stack, server, user, frequency(index % 2 + 2 * (index // 2 % 3)), tmp_path)
                  for index, user in enumerate(users)]
        for index, room in enumerate(ROOMS):
            for phone in phones[2 * index:2 * index + 2]:
                join(phone, server.address, room)
        time.sleep(2)
        spread = [participants(daemon) for daemon in daemons]
        print(f"participants per meeting server: {spread}")
        assert sum(spread) == count and min(spread) >= 4, spread  # rooms placed over both
        victim, survivor = sorted(daemons, key=participants, reverse=True)
        killed_at = time.monotonic()
        victim.kill()
        while participants(survivor) < count:
            assert time.monotonic() - killed_at < MOVED_WITHIN, (participants(survivor), server.health())
            time.sleep(0.2)
        moved_after = time.monotonic() - killed_at
        print(f"all {count} participants in their rooms on {survivor.name} "
              f"{moved_after:.1f} s after the kill")
        late = phones[-1]  # a new join lands on the survivor, in the room with the others
        join(late, server.address, ROOMS[0])
        time.sleep(3)
        assert participants(survivor) == count + 1
        dropped = [p.user for p in phones if any(e["event"] == "call_state" and e["state"] == "DISCONNECTED"
                                                 for e in p.seen())]
        assert dropped == [], f"calls dropped: {dropped}"
        for phone in phones:
            phone.send("hangup")
    for index in range(count):
        partner = index + 1 if index % 2 == 0 else index - 1
        heard = received(tmp_path / f"heard-{users[index]}.wav")
        last = heard[-int(2.5 * RATE):-RATE // 2]
        partner_tone = frequency(partner % 2 + 2 * (partner // 2 % 3))
        assert level_at(last, partner_tone) > HEARD, (users[index], level_at(last, partner_tone))


def test_a_meeting_servers_meeting_is_controlled_by_the_cli_and_its_talkers_are_on_the_bus(
        meeting_cluster: Cluster, tmp_path: Path, redis_server: RedisServer) -> None:
    server, daemons = meeting_cluster
    users = ["3101", "3102"]
    with ExitStack() as stack:
        phones = [registered_phone(stack, server, user, frequency(index), tmp_path)
                  for index, user in enumerate(users)]
        for phone in phones:
            join(phone, server.address, ROOMS[3])
        time.sleep(2)
        [home] = [daemon for daemon in daemons if participants(daemon) == 2]
        command = ("meeting", "participants", ROOMS[3], "--json", "--data-dir", str(server.data_dir))
        meeting = json.loads(pbx(*command).stdout)
        assert meeting["server"] == home.name
        numbers = {person["caller"]: person["number"] for person in meeting["participants"]}
        assert sorted(numbers) == users
        pbx("meeting", "mute", ROOMS[3], str(numbers["3101"]), "--data-dir", str(server.data_dir))
        time.sleep(3)
        for phone in phones:
            phone.send("hangup")
    # The muted one is not heard any more; the other is.
    heard = {user: received(tmp_path / f"heard-{user}.wav")[-int(2.5 * RATE):-RATE // 2] for user in users}
    assert level_at(heard["3102"], frequency(0)) < 150 and level_at(heard["3101"], frequency(1)) > HEARD
    client = redis.Redis.from_url(redis_server.url)
    talkers = [event for _, event in read_events(client, last_id="0") if isinstance(event, MeetingTalker)]
    client.close()
    print(f"talker events: {talkers}")
    started = {(event.caller, event.participant) for event in talkers
               if event.talking and event.room == ROOMS[3] and event.caller in users}
    assert started == set(numbers.items()), talkers
    assert {event.server for event in talkers} == {platform.node()}
