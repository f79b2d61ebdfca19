"""What the role keepalived leaves on the hosts: checked with testinfra on every peer; then
the VIP's moves, read from `ip -4 addr` on every host (never from the state keepalived
reports): keepalived killed with SIGKILL, stopped, and back (no preemption)."""

import time

import pytest
import testinfra

VIP = "198.18.2.10"
CONFIG = "/etc/keepalived/keepalived.conf"
NOTIFY = "/usr/local/libexec/pbx/pbx-vrrp-notify"


def test_service_is_running_and_enabled(host):
    service = host.service("keepalived")
    assert service.is_running
    assert service.is_enabled


def test_config_is_valid(host):
    assert host.run(f"keepalived -t -f {CONFIG}").rc == 0
    assert host.file(CONFIG).contains(f"{VIP}/24 dev eth0")


def test_config_holds_the_policy_and_is_private(host):
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)  # the adverts' password
    text = config.content_string
    for line in ("nopreempt", "auth_type PASS", "auth_pass mka-pass", "garp_master_delay 1",
                 "garp_master_repeat 3", f'notify "{NOTIFY} callmanager /etc/pbx/callmanager.yml"'):
        assert line in text, line


def test_systemd_restarts_keepalived_and_removes_the_vip_it_leaves(host):
    show = host.check_output("systemctl show keepalived.service -p Restart -p RestartUSec -p ExecStopPost")
    assert "Restart=always" in show
    assert "RestartUSec=1s" in show
    assert f"ip address del {VIP}/24 dev eth0" in show


def test_notify_script_is_root_owned_and_logs_the_states(host):
    script = host.file(NOTIFY)
    assert (script.user, script.group, script.mode) == ("root", "root", 0o755)
    log = host.check_output("journalctl -t pbx-vrrp --no-pager -o cat")
    assert "INSTANCE pbx_vip: INIT -> BACKUP" in log
    # No Call Manager config in this scenario: logged, and the notify does not fail.
    assert "not published on the bus: no /etc/pbx/callmanager.yml here" in log


def test_nonlocal_bind_sysctl_applied(host):
    assert host.sysctl("net.ipv4.ip_nonlocal_bind") == 1


def test_peers_are_the_other_hosts(host):
    peers = [line.strip() for line in host.file(CONFIG).content_string.split("unicast_peer {")[1]
             .split("}")[0].splitlines() if line.strip()]
    own = host.ansible.get_variables()["ansible_host"]
    assert own not in peers
    assert len(peers) == 2


@pytest.fixture(scope="module")
def all_hosts(request):
    return testinfra.get_hosts(["ansible://vrrp"], ansible_inventory=request.config.option.ansible_inventory)


def holders(hosts):
    """The hosts whose eth0 holds the VIP: the address itself, not the state keepalived reports
    (LAB-NOTES: MASTER without the VIP)."""
    return [h for h in hosts if f"inet {VIP}/" in h.check_output("ip -4 addr show dev eth0")]


def one_holder(hosts, *, within, other_than=None):
    """The one host holding the VIP once exactly one does (and not `other_than`), waiting up
    to `within` seconds; fails with who held it last."""
    deadline = time.monotonic() + within
    while True:
        holding = holders(hosts)
        if len(holding) == 1 and holding[0] is not other_than:
            return holding[0]
        if time.monotonic() > deadline:
            pytest.fail(f"after {within} s the VIP is on {[h.backend.host for h in holding]}")
        time.sleep(0.2)


def test_exactly_one_host_holds_the_vip(all_hosts):
    one_holder(all_hosts, within=15)


def test_a_master_killed_with_sigkill_is_restarted_and_the_vip_is_on_one_host(all_hosts):
    master = one_holder(all_hosts, within=15)
    restarts = int(master.check_output("systemctl show keepalived.service -p NRestarts --value"))

    master.run("systemctl kill --signal=SIGKILL keepalived.service")

    one_holder(all_hosts, within=10, other_than=master)
    time.sleep(3)  # and it stays so: no duplicate address once the killed one is back
    assert len(holders(all_hosts)) == 1
    assert master.service("keepalived").is_running
    assert int(master.check_output("systemctl show keepalived.service -p NRestarts --value")) == restarts + 1


def test_the_vip_leaves_a_stopped_master_and_does_not_come_back_to_it(all_hosts):
    master = one_holder(all_hosts, within=15)

    master.run("systemctl stop keepalived.service")
    try:
        new_master = one_holder(all_hosts, within=5, other_than=master)
    finally:
        master.run("systemctl start keepalived.service")

    time.sleep(6)  # twice the time a backup waits for a silent master: no preemption
    assert holders(all_hosts) == [new_master]
