"""The lab end to end: build it, deploy it twice, verify it, ask the IVR, meeting and queue servers,
call an IVR menu, a meeting room and a phone through the VIP, grow it under a call, tear it
down. Slow (about 15 minutes) and root-only: `pytest -m lab tests/lab`.

The tests run in file order and share one lab (module scope); each step needs the one
before it. Timings are printed (`-s`) for the README's integrator section.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pbx_services.rtp.wav import write_wav
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, tone
from tests.integration.test_meetings import HEARD, SILENT, TONES, heard_lately
from tests.lab.labscripts import INVENTORY, LAB_DIR, LAB_MARKS, REPO, health, lab, smoke

NEW_MEDIA_HOST, NEW_MEDIA_ADDRESS = "media2", "198.18.0.32"
EXPANSION_HOLD = 150.0
IVR_SERVERS = {"ivr1": "198.18.0.41", "ivr2": "198.18.0.42"}
MEETING_SERVERS = {"meeting1": "198.18.0.61", "meeting2": "198.18.0.62"}
QUEUE_SERVERS = {"ivr1-queue": "198.18.0.41", "ivr2-queue": "198.18.0.42"}
"""The queue servers run on the IVR hosts, under names of their own (inventory/lab/group_vars/queue)."""
QUEUE_HTTP_PORT = 9065
APPLICATION_SERVERS = {"ivr": (IVR_SERVERS, 5090), "meeting": (MEETING_SERVERS, 5100),
                       "queue": (QUEUE_SERVERS, 5110)}
"""Each role's servers in the lab inventory and the SIP port of their first worker."""
PORTAL_URL = f"https://{smoke.DEFAULT_VIP}:8443"
"""The web portal through the VIP (inventory/lab/group_vars/portal: port 8443, self-signed)."""
CALL_MANAGERS = ("198.18.0.11", "198.18.0.12", "198.18.0.13")
LAB_MENU = "800"
LAB_ROOM = "850"

pytestmark = [*LAB_MARKS, pytest.mark.timeout(1800)]


def timed(what: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1"), **kwargs)
    print(f"\n[lab timing] {what}: {time.monotonic() - started:.0f} s (exit {result.returncode})")
    return result


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines: host -> {ok, changed, failed, ...}."""
    return {match[1]: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match[2])}
            for match in re.finditer(r"^(\S+)\s+: (ok=.*)$", output, re.MULTILINE)}


def playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return timed(f"ansible-playbook {' '.join(args)}".strip(),
                 ["ansible-playbook", "-i", str(inventory), *args, "ansible/site.yml"])


@pytest.fixture(scope="module")
def lab_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of inventory/lab, which the expansion test grows by one host."""
    copy = tmp_path_factory.mktemp("inventory") / "lab"
    shutil.copytree(INVENTORY, copy)
    return copy


@pytest.fixture(scope="module")
def booted(lab_inventory: Path):
    assert timed("lab down (clean slate)", [sys.executable, str(LAB_DIR / "lab.py"), "down"]).returncode == 0
    # The hosts install this working tree's code.
    wheels = timed("wheelhouse", [sys.executable, str(LAB_DIR / "lab.py"), "wheelhouse", "--rebuild"])
    assert wheels.returncode == 0, wheels.stderr
    result = timed("lab up (image cached or built)", [sys.executable, str(LAB_DIR / "lab.py"), "up",
                                                      "-i", str(lab_inventory)])
    assert result.returncode == 0, result.stdout + result.stderr
    yield lab_inventory
    # Whatever happened, nothing stays behind; test_teardown checks it did.
    subprocess.run([sys.executable, str(LAB_DIR / "lab.py"), "down"], check=False, capture_output=True)


def test_site_first_run_deploys_the_cluster(booted: Path) -> None:
    result = playbook(booted)
    assert result.returncode == 0, result.stdout[-6000:]
    assert set(recap(result.stdout)) == {"cm1", "cm2", "cm3", "db1", "db2", "media1", *IVR_SERVERS,
                                         *MEETING_SERVERS}


def test_site_second_run_changes_nothing(booted: Path) -> None:
    result = playbook(booted)
    assert result.returncode == 0, result.stdout[-6000:]
    changed = {host: counts["changed"] for host, counts in recap(result.stdout).items() if counts["changed"]}
    assert changed == {}, re.findall(r"^changed: .*$", result.stdout, re.MULTILINE)


def test_testinfra_verify_every_host(booted: Path) -> None:
    result = timed("testinfra verify", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                        "--hosts=ansible://all", f"--ansible-inventory={booted}",
                                        str(LAB_DIR / "testinfra")])
    assert result.returncode == 0, result.stdout[-6000:]


def vip_holders() -> list[str]:
    """The Call Managers (their addresses) on which the VIP is up."""
    holders = []
    for address in CALL_MANAGERS:
        shown = lab.in_ns(lab.Lab(lab.DEFAULT_LAB).controller_ns, *lab.ssh_argv(address),
                          "ip -4 -o addr show dev eth0", capture=True).stdout
        if " 198.18.0.10/" in shown:
            holders.append(address)
    return holders


def test_exactly_one_call_manager_holds_the_vip(booted: Path) -> None:
    assert len(vip_holders()) == 1


def portal_probe(the_lab: lab.Lab, base: str, certificate: Path, *args: str) -> dict:
    """scripts/lab/portal_probe.py's report of `base`, asked from the controller, trusting `certificate`
    alone and checking that it names the host asked."""
    result = lab.in_ns(the_lab.controller_ns, "python3", str(LAB_DIR / "portal_probe.py"), base,
                       "--certificate", str(certificate), *args, check=False, capture=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_portal_answers_through_the_vip_over_https(booted: Path, tmp_path: Path) -> None:
    """The web portal on the three Call Managers (group portal), reached through the VIP over HTTPS
    with the self-signed certificate they share, which names the VIP: /health and the login page
    answer 200, and the lab's administrator (created by the role, not a one-time one) logs in."""
    the_lab = lab.Lab(lab.DEFAULT_LAB)
    certificate = tmp_path / "portal.crt"
    certificate.write_text(lab.in_ns(the_lab.controller_ns, *lab.ssh_argv(CALL_MANAGERS[0]),
                                     "cat /etc/pbx/tls/portal.crt", capture=True).stdout)
    secrets = yaml.safe_load((booted / "group_vars" / "all" / "secrets.yml").read_text())
    portal = yaml.safe_load((booted / "group_vars" / "portal" / "portal.yml").read_text())
    started = time.monotonic()
    login = ("--user", portal["pbx_portal__admin_name"], "--password", secrets["lab_portal_admin_password"])
    report = portal_probe(the_lab, PORTAL_URL, certificate, *login)
    print(f"\n[lab] portal through the VIP: {report} in {time.monotonic() - started:.1f} s")
    assert report["health"] == 200, report
    assert report["login_page"] == {"status": 200, "password_form": True, "csrf_token": True}, report
    assert report["login"]["logged_in"], report
    # Its cluster page lists the three Call Managers (the role callmanager adds each), all up,
    # the one holding the VIP marked. The probes of a portal process start with its first request.
    deadline = time.monotonic() + 20
    while True:
        servers = portal_probe(the_lab, PORTAL_URL, certificate, *login, "--servers")["servers"]
        managers = {s["name"]: s for s in servers if s["role"] == "callmanager"}
        if all(s["state"] == "up" for s in managers.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"[lab] the portal's Call Managers: {sorted(managers.values(), key=lambda s: s['name'])}")
    assert sorted(managers) == ["cm1", "cm2", "cm3"], servers
    assert all(s["state"] == "up" for s in managers.values()), managers
    holder = CALL_MANAGERS.index(vip_holders()[0]) + 1
    assert [s["name"] for s in managers.values() if s["holds_vip"]] == [f"cm{holder}"], managers
    for address in CALL_MANAGERS:
        served = portal_probe(the_lab, f"https://{address}:8443", certificate)
        assert served["certificate_sha256"] == report["certificate_sha256"], address
        assert served["health"] == 200, (address, served)


@pytest.mark.parametrize("role", sorted(APPLICATION_SERVERS))
def test_application_servers_listed_and_every_worker_answers_options(booted: Path, role: str) -> None:
    the_lab = lab.Lab(lab.DEFAULT_LAB)
    listed = smoke.admin(the_lab, "198.18.0.11", "server", "list")
    rows = {row[0]: row for row in map(str.split, listed.splitlines()) if row}
    group_vars = yaml.safe_load((booted / "group_vars" / role / f"{role}.yml").read_text())
    workers = group_vars[f"pbx_{role}__workers"]
    servers, sip_port = APPLICATION_SERVERS[role]
    for name, address in servers.items():
        assert rows.get(name, [])[1:4] == [role, f"{address}:{sip_port}", str(workers)], listed
        for port in range(sip_port, sip_port + workers):
            status = lab.in_ns(the_lab.controller_ns, "python3", str(LAB_DIR / "vip_probe.py"),
                               f"{address}:{port}", "--status", "--timeout", "2", capture=True).stdout.strip()
            assert status == "SIP/2.0 200 OK", f"{name} ({address}:{port}) answered {status!r}"


def test_queue_servers_run_and_answer_health_with_the_state_store(booted: Path) -> None:
    """pbx-queue on each IVR host: active (it does not start without the cluster's Redis) and
    /health ok with every worker up. Listed with role queue, each worker answering OPTIONS: the
    application servers' test above."""
    the_lab = lab.Lab(lab.DEFAULT_LAB)
    for name, address in QUEUE_SERVERS.items():
        active = lab.in_ns(the_lab.controller_ns, *lab.ssh_argv(address), "systemctl", "is-active",
                           "pbx-queue.service", check=False, capture=True).stdout.strip()
        assert active == "active", f"{name}: pbx-queue.service is {active!r}"
        reported = health(address, QUEUE_HTTP_PORT)
        assert reported.get("status") == "ok" and all(w["up"] for w in reported["workers"]), (name, reported)


def lab_phone(the_lab: lab.Lab, passwords: dict[str, str], user: str, port: int,
              **options: object) -> Pjsua2Phone:
    """A registered pjsua2 phone in the lab's controller namespace, with the VIP as its server."""
    device = Pjsua2Phone(user=user, password=passwords[user], server=f"{smoke.DEFAULT_VIP}:5060", port=port,
                         domain="pbx.local", codecs=None, bind=the_lab.controller.split("/")[0],
                         launcher=("ip", "netns", "exec", the_lab.controller_ns), **options)  # type: ignore[arg-type]
    assert device.register()["code"] == 200
    return device


def test_call_to_the_ivr_through_the_vip_is_sent_to_the_extension(booted: Path, tmp_path: Path) -> None:
    """A menu made with `pbx prompt add` and `pbx ivr add` on a Call Manager host; a pjsua2 phone
    in the controller calls it through the VIP, hears the greeting from an IVR server, presses 2
    and is connected to the other phone; the IVR server has left the call."""
    the_lab = lab.Lab(lab.DEFAULT_LAB)
    admin = smoke.DEFAULT_ADMIN
    passwords = smoke.create_users(the_lab, admin)
    greeting = tmp_path / "greeting.wav"
    times = np.arange(3 * 8000) / 8000
    write_wav(greeting, 8000, (np.sin(2 * np.pi * 440 * times) * 8000).astype(np.int16))
    subprocess.run(["ip", "netns", "exec", the_lab.controller_ns, *lab.ssh_argv(admin),
                    "cat > /tmp/lab-greeting.wav"], input=greeting.read_bytes(), check=True, timeout=60)
    smoke.admin(the_lab, admin, "prompt", "add", "lab-greeting", "/tmp/lab-greeting.wav", "--replace")
    smoke.admin(the_lab, admin, "ivr", "add", LAB_MENU, "--greeting", "lab-greeting", "--option",
                f"2={smoke.CALLEE}", "--replace")
    time.sleep(11)  # the Call Managers' directory learns the new number within 10 s

    caller = lab_phone(the_lab, passwords, smoke.CALLER, smoke.CALLER_PORT)
    callee = lab_phone(the_lab, passwords, smoke.CALLEE, smoke.CALLEE_PORT, auto_answer=True)
    try:
        caller.send("call", uri=f"sip:{LAB_MENU}@pbx.local")
        caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(1.5)
        endpoints = [e for e in master_health_of(the_lab)["application_endpoints"] if e["role"] == "ivr"]
        assert {e["server"] for e in endpoints} == set(IVR_SERVERS), endpoints
        assert sum(e["calls"] for e in endpoints) == 1, endpoints  # each IVR worker is an endpoint
        assert caller.stats()["rx_packets"] >= 50, "no greeting"
        caller.dtmf("2")
        callee.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(2)
        assert callee.stats()["rx_packets"] >= 50
        endpoints = [e for e in master_health_of(the_lab)["application_endpoints"] if e["role"] == "ivr"]
        assert sum(e["calls"] for e in endpoints) == 0, f"the IVR server is still in the call: {endpoints}"
        caller.send("hangup")
        callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=15)
    finally:
        caller.close()
        callee.close()


def test_call_to_a_meeting_room_through_the_vip_each_phone_hears_the_other(booted: Path,
                                                                           tmp_path: Path) -> None:
    """A room made with `pbx meeting add` on a Call Manager host; two pjsua2 phones in the
    controller call it through the VIP, each sending its own tone: the Call Manager sends both
    to the room's one meeting worker, where each hears the other's tone and not its own, and
    the count asked with key 2 is spoken (not the tones that stand in without espeak-ng)."""
    the_lab = lab.Lab(lab.DEFAULT_LAB)
    admin = smoke.DEFAULT_ADMIN
    passwords = smoke.create_users(the_lab, admin)
    smoke.admin(the_lab, admin, "meeting", "add", LAB_ROOM)
    time.sleep(11)  # the Call Managers' directory learns the new number within 10 s

    ports = {smoke.CALLER: smoke.CALLER_PORT, smoke.CALLEE: smoke.CALLEE_PORT}
    phones = []
    try:
        for user, port in ports.items():
            sent = tmp_path / f"tone-{user}.wav"
            write_wav(sent, RATE, tone(TONES[user], 5.0, level=6000))
            phones.append(lab_phone(the_lab, passwords, user, port, play=sent,
                                    record=tmp_path / f"heard-{user}.wav"))
        for phone in phones:
            phone.send("call", uri=f"sip:{LAB_ROOM}@pbx.local")
            state = phone.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"),
                                   timeout=15)
            assert state["state"] == "CONFIRMED", state
        time.sleep(1)
        phones[0].dtmf("2")  # "There are 2 participants.": an announcement, spoken by espeak-ng
        time.sleep(5)
        endpoints = [e for e in master_health_of(the_lab)["application_endpoints"] if e["role"] == "meeting"]
        assert {e["server"] for e in endpoints} == set(MEETING_SERVERS), endpoints
        assert sorted(e["calls"] for e in endpoints if e["calls"]) == [2], f"not on one worker: {endpoints}"
        for phone in phones:
            phone.send("hangup")
            phone.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=15)
    finally:
        for phone in phones:
            phone.close()
    for user, other in ((smoke.CALLER, smoke.CALLEE), (smoke.CALLEE, smoke.CALLER)):
        levels = heard_lately(tmp_path, user)
        print(f"\n[lab] {user} hears {({u: round(v) for u, v in levels.items()})}")
        assert levels[other] > HEARD, (user, levels)
        assert levels[user] < SILENT, (user, levels)
    # The count was spoken by espeak-ng in the unit's sandbox, or the worker logged why it plays
    # tones instead.
    for address in MEETING_SERVERS.values():
        journal = lab.in_ns(the_lab.controller_ns, *lab.ssh_argv(address),
                            "journalctl -u pbx-meeting.service --no-pager -o cat", capture=True).stdout
        assert "announcements are tones" not in journal, journal[-3000:]


def test_call_through_the_vip(booted: Path, tmp_path: Path) -> None:
    phones = smoke.phones_for(tmp_path)
    outcome = smoke.start_call(phones, hold=2).finish(timeout=120)
    assert outcome.ok, outcome.output


def master_health(phones) -> dict:
    """/health of the Call Manager holding the VIP (the one that has the calls)."""
    return master_health_of(phones.lab)


def master_health_of(the_lab: lab.Lab) -> dict:
    for address in ("198.18.0.11", "198.18.0.12", "198.18.0.13"):
        shown = lab.in_ns(the_lab.controller_ns, *lab.ssh_argv(address), "ip -4 -o addr show dev eth0",
                          capture=True).stdout
        if " 198.18.0.10/" in shown:
            found = health(address)
            assert found, f"the Call Manager at {address} does not answer /health"
            return found
    raise AssertionError("no Call Manager holds the VIP")


def test_media_host_added_with_limit_while_a_call_is_up(booted: Path, tmp_path: Path) -> None:
    phones = smoke.phones_for(tmp_path)
    call = smoke.start_call(phones, hold=EXPANSION_HOLD)
    deadline = time.monotonic() + 30
    while master_health(phones)["active_calls"] != 1:
        assert time.monotonic() < deadline, "the call did not come up"
        time.sleep(0.5)
    anchored = {e["server"]: e["calls"] for e in master_health(phones)["media_endpoints"]}
    assert anchored == {"media1": 1}

    hosts_file = booted / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    hosts["all"]["children"]["media"]["hosts"][NEW_MEDIA_HOST] = {"ansible_host": NEW_MEDIA_ADDRESS}
    hosts_file.write_text(yaml.safe_dump(hosts, sort_keys=False))
    result = timed("lab up media2", [sys.executable, str(LAB_DIR / "lab.py"), "up", "-i", str(booted),
                                     NEW_MEDIA_HOST])
    assert result.returncode == 0, result.stdout + result.stderr
    result = playbook(booted, "--limit", NEW_MEDIA_HOST)
    assert result.returncode == 0, result.stdout[-6000:]
    assert set(recap(result.stdout)) == {NEW_MEDIA_HOST}

    deadline = time.monotonic() + 20
    while True:
        health = master_health(phones)
        endpoints = {e["server"]: e for e in health["media_endpoints"]}
        if endpoints.get(NEW_MEDIA_HOST, {}).get("up"):
            break
        assert time.monotonic() < deadline, f"{NEW_MEDIA_HOST} not in service: {endpoints}"
        time.sleep(1)
    assert call.caller.poll() is None and call.callee.poll() is None, "the call ended while media2 was added"
    assert health["active_calls"] == 1
    assert endpoints["media1"]["calls"] == 1
    outcome = call.finish(timeout=EXPANSION_HOLD + 120)
    assert outcome.ok, outcome.output


def test_teardown_leaves_nothing(booted: Path) -> None:
    result = timed("lab down", [sys.executable, str(LAB_DIR / "lab.py"), "down"])
    assert result.returncode == 0, result.stderr
    left = subprocess.run([sys.executable, str(LAB_DIR / "lab.py"), "leftovers"], capture_output=True,
                          text=True, check=False)
    assert left.returncode == 0, left.stdout
    assert not [ns for ns in lab.netns_list() if ns.startswith(f"{lab.DEFAULT_LAB}-")]
