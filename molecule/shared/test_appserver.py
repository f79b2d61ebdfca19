"""What the roles of the SIP application servers (ivr, meeting, queue) leave on a host, checked
with testinfra on every host of the scenario's application-server group.

The scenarios molecule/ivr, molecule/meeting and molecule/queue run this file in their verify
step, beside their own tests/. A host's role is the application-server group it is in; what
its config must hold is the scenario inventory's value of the role's variable, else the
role's default.
"""

import json
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VIP_PROBE = REPO / "scripts" / "lab" / "vip_probe.py"
VENV_PYTHON = "/opt/pbx/venv/bin/python"
APPLICATION_SERVER_ROLES = ("ivr", "meeting", "queue")
STATE_STORE_ROLES = ("meeting", "queue")
"""The roles whose config names the cluster's Redis (`state`) when the site has one."""


def role_of(host):
    groups = host.ansible.get_variables()["group_names"]
    [role] = [group for group in groups if group in APPLICATION_SERVER_ROLES]
    return role


def expected(host, key):
    """The value the role was given for pbx_<role>__<key>: the inventory's, else its default."""
    role = role_of(host)
    defaults = yaml.safe_load((REPO / "ansible" / "roles" / role / "defaults" / "main.yml").read_text())
    return host.ansible.get_variables().get(f"pbx_{role}__{key}", defaults[f"pbx_{role}__{key}"])


def address(host):
    return host.ansible.get_variables()["ansible_host"]


def unit(host):
    return f"pbx-{role_of(host)}.service"


def config_path(host):
    return f"/etc/pbx/{role_of(host)}.yml"


def rendered_section(host):
    return yaml.safe_load(host.file(config_path(host)).content_string)[role_of(host)]


def options_status(host, port):
    """The status line a SIP OPTIONS to the host's `port` gets, sent from the scenario's
    controller namespace (where the Call Managers would be)."""
    controller = f"{host.ansible.get_variables()['lab_name']}-ctl"
    return subprocess.run(["ip", "netns", "exec", controller, "python3", str(VIP_PROBE),
                           f"{address(host)}:{port}", "--status", "--timeout", "2"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_service_is_running_and_enabled(host):
    service = host.service(unit(host).removesuffix(".service"))
    assert service.is_running
    assert service.is_enabled


def test_service_runs_as_pbx_with_hardening(host):
    show = host.check_output(f"systemctl show {unit(host)} -p User -p NoNewPrivileges -p ProtectSystem "
                             "-p PrivateTmp -p LimitNOFILE -p ReadWritePaths -p CapabilityBoundingSet")
    for setting in ("User=pbx", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                    f"LimitNOFILE={expected(host, 'limit_nofile')}",
                    f"ReadWritePaths=/var/lib/pbx/{role_of(host)}", "CapabilityBoundingSet=\n"):
        assert setting in show + "\n", setting
    assert {process.user for process in host.process.filter(comm="pbx")} == {"pbx"}


def test_unit_passes_systemd_analyze(host):
    assert host.run(f"systemd-analyze verify --man=no /etc/systemd/system/{unit(host)}").rc == 0


def test_config_is_valid_private_and_complete(host):
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config {config_path(host)}").rc == 0
    config = host.file(config_path(host))
    assert (config.user, config.group, config.mode) == ("root", "pbx", 0o640)
    section = rendered_section(host)
    assert (section["sip_host"], section["sip_port"], section["rtp_host"]) == (
        address(host), expected(host, "sip_port"), address(host))
    assert section["port_min"] == expected(host, "port_min")
    assert section["port_max"] == expected(host, "port_max")
    assert section["workers"] >= 1
    # `state` only for a role that uses the cluster's Redis, on a site that has one (Sentinels).
    has_redis = bool(host.ansible.get_variables()["groups"].get("redis_sentinel"))
    has_state = "state" in yaml.safe_load(config.content_string)
    assert has_state == (role_of(host) in STATE_STORE_ROLES and has_redis)


def test_recordings_directory_is_the_daemons(host):
    recordings = host.file(f"/var/lib/pbx/{role_of(host)}/recordings")
    assert recordings.is_directory
    assert (recordings.user, recordings.group, recordings.mode) == ("pbx", "pbx", 0o700)


def test_data_is_the_service_users_only(host):
    for path in ("/var/lib/pbx", f"/var/lib/pbx/{role_of(host)}"):
        directory = host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("pbx", "pbx", 0o700), path
    assert "UMask=0077" in host.check_output(f"systemctl show {unit(host)} -p UMask")
    assert host.check_output("find /var/lib/pbx -mindepth 1 ! -name pbx.yml -perm /077") == ""


def test_every_worker_answers_sip_options(host):
    first = expected(host, "sip_port")
    for worker in range(rendered_section(host)["workers"]):
        port = first + worker
        assert host.socket(f"udp://{address(host)}:{port}").is_listening, port
        status = options_status(host, port)
        assert status == "SIP/2.0 200 OK", f"worker {worker} (port {port}) answered {status!r}"


def test_health_answers_ok_with_every_worker(host):
    url = f"http://{address(host)}:{expected(host, 'http_port')}/health"
    body = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             f"'{url}').read().decode())\"")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert len(health["workers"]) == rendered_section(host)["workers"]


def test_server_listed_with_its_role(host):
    hostname = host.ansible.get_variables()["inventory_hostname"]
    rows = [line.split() for line in host.check_output("pbx server list").splitlines()]
    [row] = [row for row in rows if row[:1] == [hostname]]
    workers = rendered_section(host)["workers"]
    assert row[1:4] == [role_of(host), f"{address(host)}:{expected(host, 'sip_port')}", str(workers)]
    assert row[6] == str(expected(host, "http_port"))  # the HTTP column: its control API


def test_sysctls_applied(host):
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.file("/etc/sysctl.d/60-pbx.conf").contains("net.core.somaxconn")
