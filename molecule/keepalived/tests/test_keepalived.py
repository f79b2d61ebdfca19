"""What the role keepalived leaves on the hosts: checked with testinfra on every peer."""

import time

import pytest
import testinfra

VIP = "198.18.2.10"
CONFIG = "/etc/keepalived/keepalived.conf"


def test_service_is_running_and_enabled(host):
    service = host.service("keepalived")
    assert service.is_running
    assert service.is_enabled


def test_config_is_valid(host):
    assert host.run(f"keepalived -t -f {CONFIG}").rc == 0
    assert host.file(CONFIG).contains(f"{VIP}/24 dev eth0")


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


def test_exactly_one_host_holds_the_vip(all_hosts):
    # The address itself, not the state keepalived reports (LAB-NOTES: MASTER without the VIP).
    deadline = time.monotonic() + 15
    while True:
        holders = [h for h in all_hosts if f"inet {VIP}/" in h.check_output("ip -4 addr show dev eth0")]
        if len(holders) == 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(holders) == 1
