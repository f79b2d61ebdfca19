"""What the role callmanager leaves on a host: checked with testinfra on every Call Manager."""

import json

UNIT = "pbx-callmanager.service"
CONFIG = "/etc/pbx/callmanager.yml"
VENV_PYTHON = "/opt/pbx/venv/bin/python"


def address(host):
    return host.ansible.get_variables()["ansible_host"]


def test_service_is_running_and_enabled(host):
    service = host.service("pbx-callmanager")
    assert service.is_running
    assert service.is_enabled


def test_service_runs_as_pbx_with_hardening(host):
    show = host.check_output(f"systemctl show {UNIT} -p User -p NoNewPrivileges -p ProtectSystem")
    assert "User=pbx" in show
    assert "NoNewPrivileges=yes" in show
    assert "ProtectSystem=strict" in show
    assert host.process.get(comm="pbx").user == "pbx"


def test_data_is_the_service_users_only(host):
    for path in ("/var/lib/pbx", "/var/lib/pbx/callmanager"):
        directory = host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("pbx", "pbx", 0o700), path
    assert "UMask=0077" in host.check_output(f"systemctl show {UNIT} -p UMask")
    # Nothing under the data directory open to others; pbx.yml is root's, readable by the group.
    assert host.check_output("find /var/lib/pbx -mindepth 1 ! -name pbx.yml -perm /077") == ""
    assert host.check_output("find /var/lib/pbx -mindepth 1 -perm /007") == ""


def test_unit_passes_systemd_analyze(host):
    assert host.run(f"systemd-analyze verify --man=no /etc/systemd/system/{UNIT}").rc == 0


def test_sip_and_health_ports_listen(host):
    assert host.socket(f"udp://{address(host)}:5060").is_listening
    assert host.socket(f"tcp://{address(host)}:5060").is_listening
    assert host.socket(f"tcp://{address(host)}:9060").is_listening


def test_config_is_valid_and_private(host):
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config {CONFIG}").rc == 0
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "pbx", 0o640)


def test_health_answers_ok(host):
    body = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             f"'http://{address(host)}:9060/health').read().decode())\"")
    assert json.loads(body)["status"] == "ok"


def test_database_schema_is_current(host):
    assert host.run("pbx server list").rc == 0


def test_listed_among_the_servers_at_its_own_address(host):
    """The portal's cluster page and the VIP holder's probes find it there."""
    rows = [line.split() for line in host.check_output("pbx server list").splitlines()[1:]]
    [row] = [row for row in rows if row[1] == "callmanager"]
    assert row[0] == host.check_output("hostname")
    assert row[2] == f"{address(host)}:5060" and row[-1] == "9060"


def test_sysctls_applied(host):
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.sysctl("net.ipv4.tcp_max_syn_backlog") == 8192
    assert host.file("/etc/sysctl.d/60-pbx.conf").contains("net.core.somaxconn")
