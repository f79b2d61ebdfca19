"""Media servers as separate daemons: calls survive one being killed, and one added takes new calls.

An all-in-one PBX without its embedded media server (`media.embedded: false`) anchors
calls on `pbx media` daemons registered with `pbx server add`. Each daemon has its own
control port, RTP port range and one worker, and runs in a process group of its own, so
that killing it (SIGKILL to the group: the supervisor and its worker) is what a crashed
machine looks like. Which server carries a call is read from the phones: the port their
SDP points at is in that server's range.

Run with `-s` to see the longest audio gap a failover caused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import PBX, PbxServer, free_port, media_ports, pbx, running_pbx, wait_for
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_media_calls import connect, in_range, state

pytestmark = pytest.mark.integration

MAX_AUDIO_GAP_MS = 8000
"""Ping interval 1 s, down after 3 missed pings, then a re-INVITE to each phone."""
REHOME_TIMEOUT = 20.0
START_TIMEOUT = 30.0


@dataclass
class MediaDaemon:
    name: str
    control_port: int
    ports: tuple[int, int]
    process: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def kill(self) -> None:
        """SIGKILL to its whole process group (the supervisor and its worker), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a worker outliving its supervisor) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def media_daemon(server: PbxServer, name: str, work_dir: Path) -> Iterator[MediaDaemon]:
    """`pbx media` with its own control port and port range, on the PBX's database, added to
    the PBX's servers with `pbx server add`; stopped (and its whole process group gone) afterwards."""
    ports, control_port = media_ports(), free_port()
    config = yaml.safe_load((server.data_dir / "pbx.yml").read_text())  # the database and auth secret
    config["media"] = {"control_port": control_port, "port_min": ports[0], "port_max": ports[1],
                       "workers": 1, "recording_dir": str(work_dir / f"{name}-recordings")}
    config["http"] = {"port": 0}
    config_file = work_dir / f"{name}.yml"
    config_file.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}
    process = subprocess.Popen([*PBX, "media", "--config", str(config_file)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    daemon = MediaDaemon(name, control_port, ports, process)
    try:
        _wait_until_listening(daemon)
        pbx("server", "add", name, "--role", "media", "--host", "127.0.0.1", "--port", str(control_port),
            "--workers", "1", "--data-dir", str(server.data_dir))
        yield daemon
    finally:
        daemon.stop()


def _wait_until_listening(daemon: MediaDaemon) -> None:
    assert daemon.process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = daemon.process.stdout.readline()
        if not line:
            break
        daemon.log.append(line)
        if "listening on" in line:
            # Drain its output so that a chatty log never blocks it on a full pipe.
            threading.Thread(target=lambda: daemon.log.extend(iter(daemon.process.stdout.readline, "")),
                             daemon=True).start()
            return
    raise RuntimeError(f"pbx media {daemon.name} did not start:\n" + "".join(daemon.log))


def media_endpoints(server: PbxServer) -> dict[str, dict[str, Any]]:
    """The PBX's view of its media endpoints (from /health), by server name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=5) as reply:
        health = json.load(reply)
    return {endpoint["server"]: endpoint for endpoint in health["media_endpoints"]}


def wait_for_media_servers(server: PbxServer, *names: str) -> None:
    """Until the PBX has read the servers from the database and they have answered pings."""
    wait_for(f"the PBX lists {names}", lambda: set(names) <= set(media_endpoints(server)), 10, interval=0.3)
    time.sleep(2.5)  # a few pings answered
    endpoints = media_endpoints(server)
    assert all(endpoints[name]["up"] for name in names), endpoints


@dataclass
class Calls:
    """Phones in pairs (caller, callee) with a call up between each pair."""

    pairs: list[tuple[Pjsua2Phone, Pjsua2Phone]]

    @property
    def phones(self) -> list[Pjsua2Phone]:
        return [phone for pair in self.pairs for phone in pair]

    def homes(self, daemons: list[MediaDaemon]) -> list[set[str]]:
        """For each call, the media servers its two phones send their RTP to."""
        homes = []
        for caller, callee in self.pairs:
            addresses = [phone.media_info().get("remote_rtp") for phone in (caller, callee)]
            homes.append({daemon.name for address in addresses for daemon in daemons
                          if address and in_range(address, daemon.ports)})
        return homes

    def servers(self, daemons: list[MediaDaemon]) -> list[str]:
        """The media server each call is on (both its phones sending there)."""
        names = []
        for (caller, callee), homes in zip(self.pairs, self.homes(daemons), strict=True):
            assert len(homes) == 1, f"call {caller.user} -> {callee.user} is on {homes or 'no media server'}"
            names.append(homes.pop())
        return names

    def rx_packets(self) -> list[int]:
        return [phone.gap()["rx_packets"] for phone in self.phones]

    def disconnected(self) -> list[str]:
        """The phones that saw their call end (every event they reported so far)."""
        return [phone.user for phone in self.phones
                if any(e["event"] == "call_state" and e["state"] == "DISCONNECTED" for e in phone.seen())]


@contextlib.contextmanager
def calls_up(server: PbxServer, count: int, first_extension: int) -> Iterator[Calls]:
    """`count` calls between 2 x `count` new phones; every phone is closed afterwards."""
    extensions = [str(first_extension + i) for i in range(2 * count)]
    passwords = {extension: f"pw-{extension}-secret" for extension in extensions}
    users = server.data_dir.parent / f"users-{first_extension}.csv"
    users.write_text("extension,password\n" + "".join(f"{e},{p}\n" for e, p in passwords.items()))
    pbx("user", "import", str(users), "--data-dir", str(server.data_dir))
    phones: list[Pjsua2Phone] = []
    try:
        for index, extension in enumerate(extensions):
            phones.append(Pjsua2Phone(user=extension, password=passwords[extension], server=server.address,
                                      port=free_port(), auto_answer=index % 2 == 1))
        for phone in phones:
            _register(phone)
        pairs = list(zip(phones[::2], phones[1::2], strict=True))
        for caller, callee in pairs:
            connect(caller, callee, server)
        yield Calls(pairs)
    finally:
        with ThreadPoolExecutor(max_workers=len(phones) or 1) as pool:
            list(pool.map(Pjsua2Phone.close, phones))


def _register(phone: Pjsua2Phone) -> None:
    """Register; the PBX reads new users from the database about once a second."""
    for _ in range(5):
        if phone.register()["code"] == 200:
            return
        time.sleep(1)
    raise AssertionError(f"{phone.user} could not register: {phone.history}")


def hang_up_all(calls: Calls) -> None:
    for caller, _ in calls.pairs:
        caller.send("hangup")
    for phone in calls.phones:
        phone.wait_for("call_state", state("DISCONNECTED"))


@pytest.fixture
def pbx_without_media(tmp_path: Path) -> Iterator[PbxServer]:
    with running_pbx(tmp_path / "data", {"PBX_MEDIA__EMBEDDED": "false"}) as server:
        yield server


def test_calls_move_to_the_other_media_server_when_one_is_killed(pbx_without_media: PbxServer,
                                                                  tmp_path: Path) -> None:
    server = pbx_without_media
    with (media_daemon(server, "media-a", tmp_path) as media_a,
          media_daemon(server, "media-b", tmp_path) as media_b):
        daemons = [media_a, media_b]
        wait_for_media_servers(server, "media-a", "media-b")
        with calls_up(server, 10, 3001) as calls:
            time.sleep(1)
            homes = calls.servers(daemons)
            print(f"calls per media server: a {homes.count('media-a')}, b {homes.count('media-b')}")
            # Weighted least-calls with equal weights spreads ten calls five and five.
            assert sorted(homes) == ["media-a"] * 5 + ["media-b"] * 5, homes
            for phone in calls.phones:
                phone.reset_gap()
            before = calls.rx_packets()
            killed_at = time.monotonic()
            media_a.kill()

            def all_on_b() -> bool:
                return all(seen == {"media-b"} for seen in calls.homes(daemons))

            wait_for("every call re-homed on media-b", all_on_b, REHOME_TIMEOUT, interval=0.3)
            rehomed_after = time.monotonic() - killed_at
            time.sleep(2)
            after = calls.rx_packets()
            time.sleep(1)
            later = calls.rx_packets()
            gaps = {phone.user: phone.gap()["longest_gap_ms"] for phone in calls.phones}
            longest = max(gaps.values())
            moved = [phone.user for (caller, callee), home in zip(calls.pairs, homes, strict=True)
                     if home == "media-a" for phone in (caller, callee)]
            print(f"re-homed within {rehomed_after:.1f} s of the kill")
            print(f"longest audio gap: {longest} ms (phones of re-homed calls: "
                  f"{max(gaps[u] for u in moved)} ms, others: "
                  f"{max((g for u, g in gaps.items() if u not in moved), default=0)} ms)")
            assert calls.disconnected() == [], "calls were dropped"
            stalled = [phone.user for phone, at_kill, then, now in zip(calls.phones, before, after, later,
                                                                       strict=True)
                       if not (then > at_kill and now >= then + 25)]
            assert stalled == [], f"no audio after the failover at {stalled}: {before} {after} {later}"
            assert longest < MAX_AUDIO_GAP_MS, gaps
            endpoints = media_endpoints(server)
            assert not endpoints["media-a"]["up"] and endpoints["media-b"]["up"], endpoints
            hang_up_all(calls)


def test_media_server_added_while_calls_run_takes_the_new_calls(pbx_without_media: PbxServer,
                                                                tmp_path: Path) -> None:
    server = pbx_without_media
    with media_daemon(server, "media-a", tmp_path) as media_a:
        wait_for_media_servers(server, "media-a")
        with calls_up(server, 2, 4001) as old_calls:
            assert old_calls.servers([media_a]) == ["media-a"] * 2
            with media_daemon(server, "media-c", tmp_path) as media_c:
                wait_for_media_servers(server, "media-a", "media-c")
                before = old_calls.rx_packets()
                # media-c has no calls, media-a two: least-calls sends both new calls to media-c.
                with calls_up(server, 2, 4101) as new_calls:
                    time.sleep(1)
                    assert new_calls.servers([media_a, media_c]) == ["media-c"] * 2
                    assert old_calls.servers([media_a, media_c]) == ["media-a"] * 2
                    after = old_calls.rx_packets()
                    assert all(a >= b + 50 for b, a in zip(before, after, strict=True)), (before, after)
                    assert old_calls.disconnected() == [] and new_calls.disconnected() == []
                    hang_up_all(new_calls)
            hang_up_all(old_calls)


def _worker_pids(daemon: MediaDaemon) -> list[int]:
    """The daemon's worker processes (its supervisor's spawned children)."""
    children = subprocess.run(["pgrep", "-P", str(daemon.process.pid)], capture_output=True,
                              text=True).stdout.split()
    return [int(pid) for pid in children
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


def _audio_back_after(phones: list[Pjsua2Phone], since: float, timeout: float) -> dict[str, float]:
    """RTP received counted every 100 ms on each phone: seconds after `since` at which each
    phone's count, once it had stopped, rose again and kept rising (25 packets more, half a
    second of 20 ms audio)."""
    back: dict[str, float] = {}
    silent: set[str] = set()
    resumed: dict[str, tuple[float, int]] = {}
    last = {phone.user: phone.gap()["rx_packets"] for phone in phones}
    deadline = time.monotonic() + timeout
    while len(back) < len(phones) and time.monotonic() < deadline:
        time.sleep(0.1)
        for phone in phones:
            count, now, user = phone.gap()["rx_packets"], time.monotonic(), phone.user
            if user in back:
                continue
            if count == last[user]:
                silent.add(user)
                resumed.pop(user, None)
            elif user in silent and user not in resumed:
                resumed[user] = (now, last[user])
            elif user in resumed and count >= resumed[user][1] + 25:
                back[user] = resumed[user][0] - since
            last[user] = count
    return back


def test_the_only_media_workers_restart_gives_the_call_its_audio_back(pbx_without_media: PbxServer,
                                                                     tmp_path: Path) -> None:
    """Issue 14: with one media endpoint, a call whose worker was killed stayed silent for ever
    (`rehome()` looked for another endpoint, found none and gave up)."""
    server = pbx_without_media
    with media_daemon(server, "media-a", tmp_path) as media_a:
        wait_for_media_servers(server, "media-a")
        with calls_up(server, 1, 5001) as calls:
            time.sleep(1)
            [worker] = _worker_pids(media_a)
            silence_from = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            back = _audio_back_after(calls.phones, silence_from, REHOME_TIMEOUT)
            print(f"audio back on the restarted worker after {back} s")
            assert set(back) == {phone.user for phone in calls.phones}, f"audio never came back: {back}"
            assert max(back.values()) < MAX_AUDIO_GAP_MS / 1000
            assert _worker_pids(media_a) not in ([], [worker]), "the supervisor started a new worker"
            assert calls.servers([media_a]) == ["media-a"]
            assert calls.disconnected() == []
            hang_up_all(calls)
    [cdr] = server.wait_for_cdrs(1)
    assert (cdr["hangup_by"], cdr["end_reason"]) == ("caller", None)


def test_a_call_no_media_server_can_take_gets_a_bye_within_the_bound(tmp_path: Path) -> None:
    bound = 4.0
    with running_pbx(tmp_path / "data", {"PBX_MEDIA__EMBEDDED": "false",
                                         "PBX_CALLMANAGER__MEDIA_REHOME_TIMEOUT": str(bound)}) as server:
        with media_daemon(server, "media-a", tmp_path) as media_a:
            wait_for_media_servers(server, "media-a")
            with calls_up(server, 1, 5101) as calls:
                time.sleep(1)
                killed_at = time.monotonic()
                media_a.kill()  # supervisor and worker: nothing comes back
                for phone in calls.phones:
                    phone.wait_for("call_state", state("DISCONNECTED"), timeout=3 + bound + 5)
                ended_after = time.monotonic() - killed_at
                print(f"both phones got a BYE {ended_after:.1f} s after the media server was killed")
        [cdr] = server.wait_for_cdrs(1)
    assert (cdr["disposition"], cdr["hangup_by"], cdr["end_reason"]) == ("ANSWERED", "system", "media_lost")
    # Down after 3 missed pings (about 3 s), then `bound` seconds of waiting for a media server.
    assert 3 + bound - 1 < ended_after < 3 + bound + 3
