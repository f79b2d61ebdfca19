"""Failover of the Call Managers in the lab, each fault on its own, measured.

    pytest -m lab -s tests/lab/test_lab_failover.py       (root; about 12 minutes)

The same `site.yml` deploys the lab (three Call Managers behind the VIP with keepalived,
Redis with Sentinel on them, PostgreSQL with a replica, a media server). 1,000 users register
with sipp; two pjsua2 phones hold a call through the VIP. Then, one at a time:
  1. only the master's Call Manager is killed (SIGKILL of the whole unit: the track script moves the VIP);
  2. the Redis master is killed (and kept down until Sentinel has promoted a replica);
  3. the PostgreSQL primary is stopped for a while and started again, while calls end;
  4. the master host is cut off (its link down, every process of it killed).
For each: the seconds the VIP did not answer OPTIONS (a probe every 100 ms from the controller),
whether the call in progress kept its audio (the longest gap in the RTP each phone received)
and its BYE went through the new master (the callee hangs up, the CDR says so), whether the
1,000 registrations still route calls without registering again (calls to some of them reach
the sipp that registered them), and that nothing is left half-done (no call left on any Call
Manager or media server, one VIP holder). Then the split-brain checks: with the old master
back exactly one host holds the VIP (read on every host), and with the link between two Call
Managers cut, what happens and whether it heals. Each measurement is printed as a
"[failover]" line, the numbers docs/failover.md reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.lab.labscripts import INVENTORY, LAB_DIR, LAB_MARKS, REPO, health, lab, smoke

VIP = "198.18.0.10"
CALL_MANAGERS = {"cm1": "198.18.0.11", "cm2": "198.18.0.12", "cm3": "198.18.0.13"}
DATABASES = {"db1": "198.18.0.21", "db2": "198.18.0.22"}
CONTROLLER = "198.18.0.1"
USERS = 1000
FIRST_USER = 3000
REGISTRAR_PORT = 5080
"""The sipp that registers the 1,000 users, and later answers calls to them, listens here."""
PHONES = {"2001": 5091, "2002": 5092}
ROUTED_CALLS = 3
CALLER = "1001"

pytestmark = [*LAB_MARKS, pytest.mark.timeout(3600)]
THE_LAB = lab.Lab(lab.DEFAULT_LAB)


def report(**fields: object) -> None:
    print("[failover] " + json.dumps(fields), flush=True)


def in_controller(*argv: str, check: bool = True, timeout: float = 120,
                  input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", THE_LAB.controller_ns, *argv], capture_output=True,
                          text=True, check=check, timeout=timeout, input=input)


def ssh(address: str, command: str, *, check: bool = True, input: str | None = None,
        timeout: float = 60) -> str:
    return in_controller(*lab.ssh_argv(address), command, check=check, input=input, timeout=timeout).stdout


def in_host_ns(host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", THE_LAB.host_ns(host), *argv], capture_output=True,
                          text=True, check=check, timeout=30)


def vip_holders() -> list[str]:
    """The Call Manager hosts that have the VIP on an interface now (the kernel's word)."""
    holders = []
    for host in CALL_MANAGERS:
        if THE_LAB.host_ns(host) not in lab.netns_list():
            continue
        shown = in_host_ns(host, "ip", "-4", "-o", "addr", "show", check=False).stdout
        if f" {VIP}/" in shown:
            holders.append(host)
    return holders


def wait_for(what: str, predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def sole_holder() -> str:
    holders = wait_for("exactly one VIP holder", lambda: (h := vip_holders()) and len(h) == 1 and h, 30)
    return holders[0]


class VipProbe:
    """vip_probe.py in the controller namespace, from start to `stop()`."""

    def __init__(self, tmp: Path) -> None:
        self._stop_file = tmp / f"probe-stop-{time.monotonic_ns()}"
        self._process = subprocess.Popen(
            ["ip", "netns", "exec", THE_LAB.controller_ns, sys.executable, str(LAB_DIR / "vip_probe.py"),
             f"{VIP}:5060", "--duration", "900", "--until-file", str(self._stop_file)],
            stdout=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, Any]:
        self._stop_file.touch()
        output, _ = self._process.communicate(timeout=30)
        return json.loads(output.strip().splitlines()[-1])


@dataclass
class PhoneCall:
    caller: Pjsua2Phone
    callee: Pjsua2Phone

    def gaps(self) -> dict[str, int]:
        return {phone.user: phone.gap()["longest_gap_ms"] for phone in (self.caller, self.callee)}

    def hang_up(self) -> None:
        """The caller hangs up; the callee must hear of it (the BYE went through a Call Manager)."""
        self.caller.send("hangup")
        self.callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=15)
        self.caller.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=15)


@dataclass
class Cluster:
    tmp: Path
    passwords: dict[str, str] = field(default_factory=dict)
    phones: list[Pjsua2Phone] = field(default_factory=list)

    def admin(self, *argv: str, address: str | None = None) -> str:
        target = address or next(a for h, a in CALL_MANAGERS.items() if h in self.up_hosts())
        return ssh(target, "pbx " + " ".join(argv))

    @staticmethod
    def up_hosts() -> set[str]:
        return {host for host in CALL_MANAGERS if lab.running(THE_LAB, host)}

    def phone(self, user: str) -> Pjsua2Phone:
        phone = Pjsua2Phone(user=user, password=self.passwords[user], server=f"{VIP}:5060",
                            port=PHONES[user], domain="pbx.local", codecs=None, bind=CONTROLLER,
                            launcher=("ip", "netns", "exec", THE_LAB.controller_ns))
        self.phones.append(phone)
        assert phone.register(timeout=20)["code"] == 200
        return phone

    def start_call(self) -> PhoneCall:
        caller, callee = self.phone("2001"), self.phone("2002")
        caller.send("call", uri=f"sip:2002@{VIP}:5060")
        callee.wait_for("incoming", timeout=15)
        callee.send("answer", code=180)
        time.sleep(1.0)  # it rings, then the person picks up
        callee.send("answer", code=200)
        caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        callee.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(2.0)
        for phone in (caller, callee):
            assert phone.gap()["rx_packets"] > 50, f"{phone.user} hears nothing"
            phone.reset_gap()
        return PhoneCall(caller=caller, callee=callee)

    def close_phones(self) -> None:
        for phone in self.phones:
            phone.close()
        self.phones.clear()

    def route_calls_to_registered_users(self, count: int = ROUTED_CALLS) -> int:
        """Calls from 1001 to `count` of the 1,000 users, answered by the sipp that registered
        them (no REGISTER since); how many were answered."""
        phones = smoke.Phones(lab=THE_LAB, vip=VIP, controller_address=CONTROLLER,
                              passwords=self.passwords, work_dir=self.tmp)
        answered = 0
        callee = smoke.sipp(phones, "uas_answer", REGISTRAR_PORT, "-m", str(count), remote=False,
                            recv_timeout_ms=60000)
        time.sleep(0.5)
        try:
            for user in random.sample(range(FIRST_USER, FIRST_USER + USERS), count):
                users = self.tmp / "callers.csv"
                users.write_text(f"SEQUENTIAL\n{CALLER};[authentication username={CALLER} "
                                 f"password={self.passwords[CALLER]}]\n")
                caller = smoke.sipp(phones, "uac_auth", 5071, "-inf", str(users), "-s", str(user), "-m", "1",
                                    "-d", "500")
                outcome = smoke.result(phones, caller, "uac_auth", 60)
                answered += outcome.ok
        finally:
            with contextlib.suppress(ProcessLookupError):
                callee.kill()
            callee.communicate(timeout=10)
        return answered

    def calls_left(self) -> dict[str, int]:
        """Calls each running Call Manager still holds."""
        return {host: health(address).get("active_calls", -1) for host, address in CALL_MANAGERS.items()
                if host in self.up_hosts()}

    def registered(self, holder: str) -> int:
        return int(health(CALL_MANAGERS[holder]).get("registered_contacts") or 0)

    def cdrs_of(self, extension: str) -> list[dict[str, Any]]:
        return json.loads(self.admin("cdr", "list", "--extension", extension, "--format", "json",
                                     "--since", "1h", "--limit", "1000"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    inventory = tmp_path_factory.mktemp("inventory") / "lab"
    shutil.copytree(INVENTORY, inventory)
    run = [sys.executable, str(LAB_DIR / "lab.py")]
    subprocess.run([*run, "down"], check=True, capture_output=True)
    subprocess.run([*run, "wheelhouse", "--rebuild"], check=True, capture_output=True)
    up = subprocess.run([*run, "up", "-i", str(inventory)], capture_output=True, text=True)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        started = time.monotonic()
        deployed = subprocess.run(["ansible-playbook", "-i", str(inventory), "ansible/site.yml"], cwd=REPO,
                                  capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        assert deployed.returncode == 0, deployed.stdout[-6000:]
        report(step="site.yml", seconds=round(time.monotonic() - started))
        the_cluster = Cluster(tmp=tmp_path_factory.mktemp("failover"))
        yield the_cluster
        the_cluster.close_phones()
    finally:
        if not os.environ.get("PBX_LAB_KEEP"):  # set it to look at the lab after a failure
            subprocess.run([*run, "down"], check=False, capture_output=True)


def test_a_thousand_users_register_through_the_vip(cluster: Cluster) -> None:
    passwords = {str(FIRST_USER + i): f"lab-pw-{FIRST_USER + i}" for i in range(USERS)}
    passwords.update({user: f"lab-phone-{user}-pw" for user in PHONES})
    passwords.update(smoke.PASSWORDS)
    rows = "extension,password\n" + "".join(f"{u},{p}\n" for u, p in passwords.items())
    ssh(CALL_MANAGERS["cm1"], "cat > /tmp/users.csv", input=rows)
    cluster.admin("user", "import", "/tmp/users.csv", address=CALL_MANAGERS["cm1"])
    cluster.passwords = passwords
    users = cluster.tmp / "registrations.csv"
    users.write_text("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password={passwords[u]}]\n"
        for u in map(str, range(FIRST_USER, FIRST_USER + USERS))))
    phones = smoke.Phones(lab=THE_LAB, vip=VIP, controller_address=CONTROLLER, passwords=passwords,
                          work_dir=cluster.tmp)
    started = time.monotonic()
    registration = smoke.sipp(phones, "register_auth", REGISTRAR_PORT, "-inf", str(users), "-m", str(USERS),
                              "-r", "100")
    outcome = smoke.result(phones, registration, "register_auth", 300)
    report(step="register", users=USERS, successful=outcome.successful, failed=outcome.failed,
           seconds=round(time.monotonic() - started, 1))
    assert outcome.successful == USERS and outcome.failed == 0, outcome.output
    holder = sole_holder()
    assert cluster.registered(holder) >= USERS
    assert cluster.route_calls_to_registered_users() == ROUTED_CALLS
    # The standbys watch the media servers too (their control socket is on their own address),
    # so a takeover does not wait for the media servers to count as up.
    for host, address in CALL_MANAGERS.items():
        endpoints = health(address)["media_endpoints"]
        assert endpoints and all(e["up"] for e in endpoints), (host, endpoints)


@dataclass
class Drill:
    """One fault: inject, recover; what the checks found."""

    name: str
    holder_before: str
    probe: VipProbe
    call: PhoneCall


def start_drill(cluster: Cluster, name: str) -> Drill:
    holder = sole_holder()
    call = cluster.start_call()
    return Drill(name=name, holder_before=holder, probe=VipProbe(cluster.tmp), call=call)


def finish_drill(cluster: Cluster, drill: Drill, *, settle: float = 3.0, **extra: object) -> dict[str, Any]:
    """After the fault: the VIP answers, the call still has audio and ends through the new
    master, the registrations route calls, nothing is left half-done."""
    holder = sole_holder()
    time.sleep(settle)
    probe = drill.probe.stop()
    gaps = drill.call.gaps()
    held = cluster.calls_left()
    calls_before_hangup = sum(count for count in held.values() if count > 0)
    cdrs_before = len(cluster.cdrs_of("2001"))
    drill.call.hang_up()
    cluster.close_phones()
    routed = cluster.route_calls_to_registered_users()
    cdrs = wait_for("the CDR of the call",
                    lambda: (c := cluster.cdrs_of("2001")) and len(c) > cdrs_before and c, 60, interval=2)
    left = wait_for("no call left on any Call Manager",
                    lambda: (c := cluster.calls_left()) and not any(c.values()) and c, 30)
    outcome = {"case": drill.name, "holder_before": drill.holder_before, "holder_after": holder,
               "vip_silent_s": probe["longest"], "outages": probe["outages"], "probes": probe["probes"],
               "call_audio_longest_gap_ms": gaps, "calls_held_before_hangup": held,
               "registered_on_new_holder": cluster.registered(holder), "routed_calls": routed,
               "cdr": {k: cdrs[0][k] for k in ("disposition", "hangup_by") if k in cdrs[0]},
               "calls_left": left, **extra}
    report(**outcome)
    assert probe["answering_at_end"]
    assert max(gaps.values()) < 1000, gaps
    assert calls_before_hangup == 1
    assert outcome["registered_on_new_holder"] >= USERS
    assert routed == ROUTED_CALLS
    assert cdrs[0]["hangup_by"] == "caller" and cdrs[0]["disposition"] == "ANSWERED"
    return outcome


def test_killing_the_masters_call_manager_moves_the_vip(cluster: Cluster) -> None:
    drill = start_drill(cluster, "callmanager killed")
    ssh(CALL_MANAGERS[drill.holder_before], "systemctl kill --signal=SIGKILL pbx-callmanager.service")
    wait_for("the VIP to move", lambda: moved_from(drill.holder_before), 30)
    outcome = finish_drill(cluster, drill)
    assert outcome["holder_after"] != drill.holder_before
    # The killed Call Manager came back (systemd) as a standby: it holds nothing.
    killed = CALL_MANAGERS[drill.holder_before]
    wait_for("the killed Call Manager back", lambda: health(killed).get("status"), 60)
    assert health(killed)["holds_sip_address"] is False
    # keepalived's notify scripts said so on the bus: the old holder's fault, the new one's master.
    states = {(server, state) for server, _, state in bus_states(cluster)}
    report(case="vrrp events on the bus", states=sorted(states))
    assert {(drill.holder_before, "fault"), (outcome["holder_after"], "master")} <= states


def bus_states(cluster: Cluster) -> set[tuple[str, str, str]]:
    """(server, role, state) of every ServerStateChanged on the cluster's bus so far."""
    events = [json.loads(line) for line in cluster.admin(
        "event", "tail", "--from", "0", "--once", "--config", "/etc/pbx/callmanager.yml").splitlines()]
    return {(e["data"]["server"], e["data"]["role"], e["data"]["state"])
            for e in events if e.get("type") == "ServerStateChanged"}


def redis_master(*, ask_not: str | None = None) -> str | None:
    """The Redis master as the Sentinels (but the one on `ask_not`) name it now."""
    # Quoted once Redis has rewritten its config (after a failover).
    password = ssh(CALL_MANAGERS["cm1"], "sed -n 's/^requirepass //p' /etc/redis/redis.conf")
    password = password.strip().strip('"')
    for address in CALL_MANAGERS.values():
        if address == ask_not:
            continue
        answer = ssh(address, f"REDISCLI_AUTH='{password}' redis-cli -p 26379 "
                              "sentinel get-master-addr-by-name pbx", check=False).split()
        if answer:
            return answer[0]
    return None


def moved_from(host: str) -> bool:
    holders = vip_holders()
    return len(holders) == 1 and holders != [host]


def test_killing_the_redis_master_promotes_a_replica_and_loses_no_registration(cluster: Cluster) -> None:
    master = redis_master()
    assert master is not None, "no Sentinel answered"
    drill = start_drill(cluster, "redis master killed")
    started = time.monotonic()
    # Killed, and kept down (systemd would restart it within Sentinel's 5 s) until a replica is promoted.
    ssh(master, "systemctl kill --signal=SIGKILL redis-server.service; systemctl stop redis-server.service")
    promoted = wait_for("Sentinel to promote a replica",
                        lambda: (m := redis_master(ask_not=master)) and m != master and m, 60, interval=1)
    promoted_after = round(time.monotonic() - started, 1)
    ssh(master, "systemctl start redis-server.service")
    finish_drill(cluster, drill, redis_master_before=master, redis_master_after=promoted,
                 promoted_after_s=promoted_after)


def test_calls_ending_while_the_database_primary_restarts_all_get_their_cdr(cluster: Cluster) -> None:
    drill = start_drill(cluster, "postgresql primary restarted")
    ssh(DATABASES["db1"], "systemctl stop postgresql.service")
    time.sleep(2)
    # The call ends while the database is away: its CDR waits in the Call Manager and is written after.
    outcome_gap = drill.call.gaps()
    drill.call.hang_up()
    cluster.close_phones()
    time.sleep(5)
    ssh(DATABASES["db1"], "systemctl start postgresql.service")
    drill.call = cluster.start_call()  # a new call once it is back, ended by finish_drill
    finish_drill(cluster, drill, first_call_audio_longest_gap_ms=outcome_gap)
    cdrs = cluster.cdrs_of("2001")
    assert len(cdrs) >= 2 and all(c["disposition"] == "ANSWERED" for c in cdrs[:2])


def crash_host(host: str) -> None:
    """The host is cut off and dies at once: its link down, then every process of it (its
    systemd included) killed, as a power loss does. Its disk (the overlay) stays."""
    ns = THE_LAB.host_ns(host)
    in_host_ns(host, "ip", "link", "set", "eth0", "down")
    lab.kill_all(lab.cgroup_pids(ns) | lab.netns_pids(ns))
    wait_for(f"every process of {host} gone", lambda: not lab.cgroup_pids(ns), 30, interval=0.1)
    THE_LAB.pid_file(host).unlink(missing_ok=True)


def restart_host(host: str) -> None:
    """The crashed host boots again from its own disk, its link back up."""
    in_host_ns(host, "ip", "link", "set", "eth0", "up")
    [booting] = [h for h in lab.inventory_hosts([str(INVENTORY)]) if h.name == host]
    lab.boot(THE_LAB, booting, lab.build_image())
    lab.wait_ssh(THE_LAB, [booting])


def test_cutting_the_master_host_off_moves_the_vip_and_keeps_everything(cluster: Cluster) -> None:
    drill = start_drill(cluster, "master host cut off")
    victim = drill.holder_before
    crash_host(victim)
    try:
        wait_for("the VIP on another host", lambda: moved_from(victim), 30)
        outcome = finish_drill(cluster, drill, settle=8.0)  # Redis Sentinel may move too (the host held it)
        # Its keepalived died with it and said nothing: the new holder's probes tell the bus.
        wait_for(f"{victim} reported down on the bus",
                 lambda: (victim, "callmanager", "down") in bus_states(cluster), 30)
    finally:
        restart_host(victim)
    assert outcome["holder_after"] != victim
    # The old master is back: it stays a backup (nopreempt) and exactly one host holds the VIP.
    wait_for(f"{victim}'s Call Manager", lambda: health(CALL_MANAGERS[victim]).get("status"), 120, interval=2)
    samples = []
    for _ in range(20):
        samples.append(vip_holders())
        time.sleep(0.5)
    report(case="old master back", holders_over_10s=sorted({",".join(s) for s in samples}))
    assert all(s == [outcome["holder_after"]] for s in samples), samples


def test_a_cut_between_two_call_managers(cluster: Cluster) -> None:
    """VRRP between the master and one backup cut both ways (the third hears both)."""
    master = sole_holder()
    other = next(h for h in CALL_MANAGERS if h != master and health(CALL_MANAGERS[h]).get("status") == "ok")
    probe = VipProbe(cluster.tmp)
    # Everything between the two dropped where it arrives (a route would not do: keepalived
    # sends its adverts bound to the interface, past a blackhole route).
    in_host_ns(master, "iptables", "-I", "INPUT", "-s", CALL_MANAGERS[other], "-j", "DROP")
    in_host_ns(other, "iptables", "-I", "INPUT", "-s", CALL_MANAGERS[master], "-j", "DROP")
    cut_at = time.monotonic()
    samples = []
    while time.monotonic() - cut_at < 12:
        samples.append(vip_holders())
        time.sleep(0.5)
    during = sorted({",".join(s) for s in samples})
    routed_during = cluster.route_calls_to_registered_users(1)
    in_host_ns(master, "iptables", "-D", "INPUT", "-s", CALL_MANAGERS[other], "-j", "DROP")
    in_host_ns(other, "iptables", "-D", "INPUT", "-s", CALL_MANAGERS[master], "-j", "DROP")
    healed_at = time.monotonic()
    holder = wait_for("one holder after the heal", lambda: (h := vip_holders()) and len(h) == 1 and h, 30)
    converged = round(time.monotonic() - healed_at, 1)
    time.sleep(8)  # the holder announces the VIP again within garp_master_refresh (5 s)
    result = probe.stop()
    routed_after = cluster.route_calls_to_registered_users(1)
    report(case="VRRP cut between two Call Managers", master=master, cut_from=other, holders_during=during,
           routed_during=routed_during, holder_after=holder[0], converged_after_heal_s=converged,
           vip_silent_s=result["longest"], outages=result["outages"], routed_after=routed_after)
    assert len(vip_holders()) == 1
    assert result["answering_at_end"]
    assert routed_after == 1
