"""What the role ivr leaves on a host: checked with testinfra on every IVR server."""

import json
import subprocess
from pathlib import Path

import yaml

UNIT = "pbx-ivr.service"
CONFIG = "/etc/pbx/ivr.yml"
VENV_PYTHON = "/opt/pbx/venv/bin/python"
HTTP_PORT = 9062

LAB_DIR = Path(__file__).resolve().parents[3] / "scripts" / "lab"
VIP_PROBE = LAB_DIR / "vip_probe.py"


def address(host):
    return host.ansible.get_variables()["ansible_host"]


def rendered_config(host):
    return yaml.safe_load(host.file(CONFIG).content_string)


def test_service_is_running_and_enabled(host):
    service = host.service("pbx-ivr")
    assert service.is_running
    assert service.is_enabled


def test_service_runs_as_pbx_with_hardening(host):
    show = host.check_output(f"systemctl show {UNIT} -p User -p NoNewPrivileges -p ProtectSystem "
                             "-p PrivateTmp -p LimitNOFILE -p ReadWritePaths -p CapabilityBoundingSet")
    for setting in ("User=pbx", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                    "LimitNOFILE=16384", "ReadWritePaths=/var/lib/pbx/ivr", "CapabilityBoundingSet=\n"):
        assert setting in show + "\n", setting
    assert {process.user for process in host.process.filter(comm="pbx")} == {"pbx"}


def test_unit_passes_systemd_analyze(host):
    assert host.run(f"systemd-analyze verify --man=no /etc/systemd/system/{UNIT}").rc == 0


def test_config_is_valid_private_and_complete(host):
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config {CONFIG}").rc == 0
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "pbx", 0o640)
    ivr = rendered_config(host)["ivr"]
    assert (ivr["sip_host"], ivr["sip_port"], ivr["rtp_host"]) == (address(host), 5090, address(host))
    assert (ivr["port_min"], ivr["port_max"]) == (30000, 31999)
    assert ivr["workers"] >= 1
    assert "state" not in rendered_config(host)


def test_recordings_directory_is_the_daemons(host):
    recordings = host.file("/var/lib/pbx/ivr/recordings")
    assert recordings.is_directory
    assert (recordings.user, recordings.group, recordings.mode) == ("pbx", "pbx", 0o700)


def test_data_is_the_service_users_only(host):
    for path in ("/var/lib/pbx", "/var/lib/pbx/ivr"):
        directory = host.file(path)
        assert (directory.user, directory.group, directory.mode) == ("pbx", "pbx", 0o700), path
    assert "UMask=0077" in host.check_output(f"systemctl show {UNIT} -p UMask")
    assert host.check_output("find /var/lib/pbx -mindepth 1 ! -name pbx.yml -perm /077") == ""


def options_status(host, port):
    """The status line a SIP OPTIONS to the host's `port` gets, sent from the scenario's
    controller namespace (where the Call Managers would be)."""
    controller = f"{host.ansible.get_variables()['lab_name']}-ctl"
    return subprocess.run(["ip", "netns", "exec", controller, "python3", str(VIP_PROBE),
                           f"{address(host)}:{port}", "--status", "--timeout", "2"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def test_every_worker_answers_sip_options(host):
    workers = rendered_config(host)["ivr"]["workers"]
    for worker in range(workers):
        port = 5090 + worker
        assert host.socket(f"udp://{address(host)}:{port}").is_listening, port
        status = options_status(host, port)
        assert status == "SIP/2.0 200 OK", f"worker {worker} (port {port}) answered {status!r}"


def test_health_answers_ok_with_every_worker(host):
    body = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                             f"'http://{address(host)}:{HTTP_PORT}/health').read().decode())\"")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert len(health["workers"]) == rendered_config(host)["ivr"]["workers"]


def test_server_listed_with_role_ivr(host):
    hostname = host.ansible.get_variables()["inventory_hostname"]
    rows = [line.split() for line in host.check_output("pbx server list").splitlines()]
    [row] = [row for row in rows if row[:1] == [hostname]]
    workers = rendered_config(host)["ivr"]["workers"]
    assert row[1:4] == ["ivr", f"{address(host)}:5090", str(workers)]


def test_sysctls_applied(host):
    assert host.sysctl("net.core.somaxconn") == 8192
    assert host.file("/etc/sysctl.d/60-pbx.conf").contains("net.core.somaxconn")
