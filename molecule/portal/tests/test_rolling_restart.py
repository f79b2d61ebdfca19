"""ansible/restart-portal.yml rolls: the second portal host is stopped only once the first
answers /health again, and at every moment of the roll one of them answers (asked every 0.1 s
from the controller namespace). Once for the scenario, not per host: it runs the playbook
against both portal hosts.

The containers share the machine's kernel, so systemd's *TimestampMonotonic in them and the
probe's time.monotonic() are one clock.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal_checks import CERTIFICATE, INVENTORY, PORT, PROBE, REPO, UNIT, controller_ns  # noqa: E402


def outages(lines: list[str], until: float) -> list[tuple[float, float]]:
    """The (start, end) of each time the watched portal did not answer, from the probe's lines."""
    found, down_since = [], None
    for line in lines:
        change = json.loads(line)
        if not change["answering"] and down_since is None:
            down_since = change["monotonic"]
        elif change["answering"] and down_since is not None:
            found.append((down_since, change["monotonic"]))
            down_since = None
    if down_since is not None:
        found.append((down_since, until))
    return found


def unit_times(host) -> dict[str, float]:
    """When the unit last left active (its stop began) and entered it again (healthy), in seconds."""
    show = host.check_output(f"systemctl show {UNIT} -p ActiveExitTimestampMonotonic "
                             "-p ActiveEnterTimestampMonotonic")
    values = dict(line.split("=", 1) for line in show.splitlines())
    return {"stopping": int(values["ActiveExitTimestampMonotonic"]) / 1e6,
            "active": int(values["ActiveEnterTimestampMonotonic"]) / 1e6}


def test_restart_rolls_one_host_at_a_time(tmp_path: Path) -> None:
    inventory = yaml.safe_load(INVENTORY.read_text())
    variables = inventory["all"]["vars"]
    addresses = {name: host["ansible_host"]
                 for name, host in inventory["all"]["children"]["portal"]["hosts"].items()}
    hosts = {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")
             for name in addresses}
    certificate = tmp_path / "portal.crt"
    certificate.write_text(next(iter(hosts.values())).file(CERTIFICATE).content_string)
    until = tmp_path / "stop-watching"
    watch = ["--certificate", str(certificate), "--watch", "--interval", "0.1", "--until-file", str(until)]
    in_controller = ["ip", "netns", "exec", controller_ns(variables), "python3", str(PROBE)]
    watchers = {name: subprocess.Popen([*in_controller, f"https://{address}:{PORT}", *watch],
                                       stdout=subprocess.PIPE, text=True)
                for name, address in addresses.items()}
    try:
        time.sleep(1)
        started = time.monotonic()
        playbook = REPO / "ansible" / "restart-portal.yml"
        rolled = subprocess.run(["ansible-playbook", "-i", str(INVENTORY), str(playbook)],
                                capture_output=True, text=True, check=False, timeout=600,
                                env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        time.sleep(1)
        finished = time.monotonic()
    finally:
        until.touch()
        seen = {name: watcher.communicate(timeout=30)[0].splitlines() for name, watcher in watchers.items()}
    assert rolled.returncode == 0, rolled.stdout[-4000:]
    print(f"\n[portal] the roll took {finished - started:.1f} s")

    times = {name: unit_times(host) for name, host in hosts.items()}
    first, second = sorted(times, key=lambda name: times[name]["stopping"])
    for name in (first, second):
        assert started < times[name]["stopping"] < times[name]["active"] < finished, (name, times, started)
    # The second was stopped only once the first was active again, i.e. answering /health.
    assert times[second]["stopping"] >= times[first]["active"], times

    down = {name: outages(seen[name], finished) for name in seen}
    print(f"[portal] outages seen from the controller: {down}")
    for name in down:
        assert seen[name] and json.loads(seen[name][0])["answering"], f"{name} did not answer before the roll"
    overlapping = [(a, b) for a in down[first] for b in down[second] if a[0] < b[1] and b[0] < a[1]]
    assert not overlapping, f"both portals down at once: {overlapping}"
