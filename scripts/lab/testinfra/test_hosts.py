"""testinfra checks of a deployed site, on every host, by the groups the host is in.

    pytest --hosts='ansible://all' --ansible-inventory=inventory/lab scripts/lab/testinfra

Services running and enabled, ports listening, config files valid, data private, sysctls applied. Any
site's inventory works; the lab's tests (tests/lab/) run it against the lab.
"""

import json

import pytest
import yaml

VENV_PYTHON = "/opt/pbx/venv/bin/python"
DAEMONS = {"callmanager", "media", "ivr", "meeting", "portal"}
"""The groups whose hosts run a PBX daemon as pbx-<group>.service."""


def groups(host):
    return set(host.ansible.get_variables()["group_names"])


def address(host):
    return host.ansible.get_variables()["ansible_host"]


def only_in(group):
    def check(host):
        if group not in groups(host):
            pytest.skip(f"not in group {group}")
    return check


def health(host, port):
    body = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             f"'http://{address(host)}:{port}/health', timeout=5).read().decode())\"")
    return json.loads(body)


def test_sysctls_applied(host):
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.sysctl("net.ipv4.tcp_max_syn_backlog") == 8192
    assert host.service("pbx-tune-host").is_enabled


@pytest.mark.parametrize("unit", ["pbx-callmanager", "keepalived", "redis-server", "redis-sentinel"])
def test_callmanager_services(host, unit):
    only_in("callmanager")(host)
    assert host.service(unit).is_running
    assert host.service(unit).is_enabled


def test_callmanager_listens_and_answers(host):
    only_in("callmanager")(host)
    vip = host.ansible.get_variables()["pbx_callmanager__vip"]
    assert host.socket(f"udp://{vip}:5060").is_listening
    assert host.socket(f"tcp://{vip}:5060").is_listening
    assert host.socket(f"tcp://{address(host)}:6379").is_listening
    assert host.socket(f"tcp://{address(host)}:26379").is_listening
    assert health(host, 9060)["status"] == "ok"
    # Listed at its own address, as the portal and the other Call Managers' probes find it.
    servers = host.check_output("pbx server list")
    row = [host.check_output("hostname"), "callmanager", f"{address(host)}:5060"]
    assert any(line.split()[:3] == row for line in servers.splitlines()), servers
    assert host.sysctl("net.ipv4.ip_nonlocal_bind") == 1


def test_sentinel_requires_the_password(host):
    only_in("redis_sentinel")(host)
    # The inventory holds a template ("{{ lab_... }}"), not the value: read what the role wrote
    # (quoted once Redis has rewritten its config, after a failover).
    password = host.check_output("sed -n 's/^requirepass //p' /etc/redis/redis.conf").strip('"')
    sentinel = f"redis-cli -h {address(host)} -p 26379"
    assert "NOAUTH" in host.run(f"{sentinel} ping").stdout
    assert host.check_output(f"REDISCLI_AUTH='{password}' {sentinel} ping") == "PONG"
    # The sentinels know each other, so they authenticate to each other.
    assert host.check_output(f"REDISCLI_AUTH='{password}' {sentinel} sentinel ckquorum pbx").startswith("OK")


def test_keepalived_checks_sip_on_the_hosts_own_address(host):
    only_in("callmanager")(host)
    assert host.socket(f"udp://{address(host)}:5060").is_listening
    assert host.run(f"/usr/local/libexec/pbx/pbx-sip-ping --timeout 0.5 {address(host)}:5060").rc == 0
    assert "Restart=always" in host.check_output("systemctl show keepalived.service -p Restart")


def test_callmanager_configs_valid(host):
    only_in("callmanager")(host)
    validate = f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config"
    assert host.run(f"{validate} /etc/pbx/callmanager.yml").rc == 0
    assert host.run("keepalived -t -f /etc/keepalived/keepalived.conf").rc == 0
    assert host.run("systemd-analyze verify --man=no /etc/systemd/system/pbx-callmanager.service").rc == 0


def test_media_server(host):
    only_in("media")(host)
    service = host.service("pbx-media")
    assert service.is_running and service.is_enabled
    variables = host.ansible.get_variables()
    assert host.socket(f"udp://{address(host)}:2223").is_listening
    assert health(host, 9061)["status"] == "ok"
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config /etc/pbx/media.yml").rc == 0
    assert host.run("systemd-analyze verify --man=no /etc/systemd/system/pbx-media.service").rc == 0
    servers = host.check_output("pbx server list")
    assert any(line.split()[:1] == [variables["inventory_hostname"]] for line in servers.splitlines())


@pytest.mark.parametrize("role", ["ivr", "meeting"])
def test_application_server(host, role):
    """An IVR or meeting server: running, its first worker's SIP port open, /health ok with every
    worker up, its config and unit valid, listed in the servers table with its role."""
    only_in(role)(host)
    service = host.service(f"pbx-{role}")
    assert service.is_running and service.is_enabled
    config = yaml.safe_load(host.file(f"/etc/pbx/{role}.yml").content_string)
    assert host.socket(f"udp://{address(host)}:{config[role]['sip_port']}").is_listening
    reported = health(host, config["http"]["port"])
    assert reported["status"] == "ok" and all(worker["up"] for worker in reported["workers"])
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config /etc/pbx/{role}.yml").rc == 0
    assert host.run(f"systemd-analyze verify --man=no /etc/systemd/system/pbx-{role}.service").rc == 0
    servers = host.check_output("pbx server list")
    name = host.ansible.get_variables()["inventory_hostname"]
    assert any(line.split()[:2] == [name, role] for line in servers.splitlines())


def test_every_daemon_was_started_for_the_installed_package(host):
    """What pbx_service restarts a daemon on: its record of the package differs from the one installed."""
    daemons = sorted((DAEMONS | {"queue"}) & groups(host))
    if not daemons:
        pytest.skip("runs no PBX daemon")
    installed = host.check_output(
        f"{VENV_PYTHON} -c \"import hashlib, importlib.metadata as m; print(hashlib.sha256("
        f"m.distribution('pbx-services').read_text('RECORD').encode()).hexdigest())\"")
    for daemon in daemons:
        assert host.file(f"/etc/pbx/{daemon}.package").content_string == f"pbx-services {installed}\n", daemon


def test_meeting_server_has_espeak_ng(host):
    """For the announcements; that the daemon speaks with it is the lab's meeting call's check."""
    only_in("meeting")(host)
    assert host.package("espeak-ng").is_installed


def test_portal(host):
    """The web portal on every host of the group portal: running, listening on every address (the
    VIP reaches it), its config and unit valid, its certificate public and its key the pbx group's;
    that it answers over HTTPS through the VIP is the lab test's check."""
    only_in("portal")(host)
    service = host.service("pbx-portal")
    assert service.is_running and service.is_enabled
    config = yaml.safe_load(host.file("/etc/pbx/portal.yml").content_string)
    assert config["portal"]["host"] == "0.0.0.0"
    assert host.socket(f"tcp://0.0.0.0:{config['portal']['port']}").is_listening
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config /etc/pbx/portal.yml").rc == 0
    assert host.run("systemd-analyze verify --man=no /etc/systemd/system/pbx-portal.service").rc == 0
    cert, key = host.file(config["portal"]["tls_cert"]), host.file(config["portal"]["tls_key"])
    assert (cert.user, cert.group, cert.mode) == ("root", "root", 0o644)
    assert (key.user, key.group, key.mode) == ("root", "pbx", 0o640)


def test_database(host):
    only_in("database")(host)
    service = host.service("postgresql")
    assert service.is_running and service.is_enabled
    assert host.socket(f"tcp://{address(host)}:5432").is_listening


def test_pbx_processes_run_as_pbx(host):
    if not groups(host) & DAEMONS:
        pytest.skip("no PBX daemon here")
    assert {process.user for process in host.process.filter(comm="pbx")} == {"pbx"}


def test_pbx_data_is_the_service_users_only(host):
    """Databases and recordings (HA1 hashes, people's calls) are readable by the pbx user only."""
    daemons = groups(host) & DAEMONS
    if not daemons:
        pytest.skip("no PBX daemon here")
    for path in ["/var/lib/pbx", *(f"/var/lib/pbx/{daemon}" for daemon in daemons)]:
        directory = host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("pbx", "pbx", 0o700), path
    for daemon in daemons:
        assert "UMask=0077" in host.check_output(f"systemctl show pbx-{daemon}.service -p UMask"), daemon
    # pbx.yml (the administration config) is root's, readable by the pbx group only.
    assert host.check_output("find /var/lib/pbx -mindepth 1 ! -name pbx.yml -perm /077") == ""
    assert host.check_output("find /var/lib/pbx -mindepth 1 -perm /007") == ""
