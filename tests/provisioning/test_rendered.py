"""What the roles render passes the checks the roles run on the hosts: systemd-analyze for the
units, `keepalived -t` for keepalived.conf, the daemons' config loader for their configs."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pbx_services.provisioning import validate_config
from tests.provisioning.conftest import REPO, render

VERIFY_UNIT = REPO / "ansible/roles/common/files/usr/local/libexec/pbx/pbx-verify-unit"


UNITS = ["pbx-callmanager.service", "pbx-media.service", "pbx-ivr.service", "pbx-meeting.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify(rendered: Path, unit: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run([str(VERIFY_UNIT), unit, str(rendered / unit)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_hardened(rendered: Path, unit: str) -> None:
    text = (rendered / unit).read_text()
    for setting in ("User=pbx", "NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure",
                    "CapabilityBoundingSet=\n", "LimitNOFILE=65536", "ExecStartPost=", "UMask=0077\n"):
        assert setting in text, setting
    assert re.search(r"^ReadWritePaths=/var/lib/pbx/\w+$", text, re.MULTILINE)


def test_verify_unit_helper_rejects_an_unknown_key(tmp_path: Path, rendered: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    broken = tmp_path / "broken"
    unit = (rendered / "pbx-media.service").read_text()
    broken.write_text(unit.replace("NoNewPrivileges", "NoNewPrivilege"))
    result = subprocess.run([str(VERIFY_UNIT), "pbx-media.service", str(broken)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_keepalived_config_passes_keepalived_t(rendered: Path) -> None:
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed (scripts/install-test-deps.sh)")
    config = rendered / "keepalived.conf"
    result = subprocess.run(["keepalived", "-t", "-f", str(config)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert "198.18.0.10/24 dev eth0" in text
    assert "unicast_src_ip 198.18.0.11" in text
    assert "198.18.0.12" in text and "198.18.0.13" in text
    assert "track_script" in text
    for line in ("nopreempt", "auth_type PASS", "auth_pass lab-vrrp", "garp_master_delay 1",
                 "garp_master_repeat 3",
                 'notify "/usr/local/libexec/pbx/pbx-vrrp-notify callmanager /etc/pbx/callmanager.yml"'):
        assert line in text, line
    # No weight: a failing check is FAULT, which moves the VIP soonest.
    assert not re.search(r"^\s*weight ", text, re.MULTILINE)


def test_keepalived_unit_drop_in_restarts_it_and_removes_a_vip_left_behind(rendered: Path) -> None:
    text = (rendered / "keepalived-pbx.conf").read_text()
    assert "[Service]\nRestart=always\nRestartSec=1\n" in text
    assert "ExecStopPost=-/sbin/ip address del 198.18.0.10/24 dev eth0\n" in text


def test_keepalived_t_rejects_a_broken_config(rendered: Path, tmp_path: Path) -> None:
    if shutil.which("keepalived") is None:
        pytest.skip("keepalived is not installed (scripts/install-test-deps.sh)")
    broken = tmp_path / "keepalived.conf"
    broken.write_text((rendered / "keepalived.conf").read_text().replace("virtual_router_id 51",
                                                                         "virtual_router_id 300"))
    checked = subprocess.run(["keepalived", "-t", "-f", str(broken)], capture_output=True, check=False)
    assert checked.returncode != 0


@pytest.mark.parametrize("name", ["callmanager", "media", "ivr", "meeting"])
def test_daemon_config_is_valid(rendered: Path, name: str) -> None:
    assert validate_config.main([str(rendered / f"{name}.yml")]) == 0


def test_callmanager_binds_the_vip(rendered: Path) -> None:
    text = (rendered / "callmanager.yml").read_text()
    assert "host: 198.18.0.10" in text
    assert "port: 9060" in text


def test_callmanager_listens_and_controls_media_on_its_own_address(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "callmanager.yml").read_text())
    assert config["sip"]["host"] == "198.18.0.10"
    assert config["sip"]["node_host"] == "198.18.0.11"  # keepalived's pbx-sip-ping asks here
    assert config["callmanager"]["media_control_host"] == "198.18.0.11"


STATE = {"url": "redis+sentinel://:p%40ss%20word%2F0123456@198.18.0.11:26379,198.18.0.12:26379,"
                "198.18.0.13:26379/pbx/0"}
"""The cluster's Redis, behind the render inventory's Sentinels."""


def test_callmanager_workers_share_redis_behind_the_sentinels(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "callmanager.yml").read_text())
    assert config["state"] == STATE
    assert config["callmanager"]["workers"] == 0


def test_validate_config_reports_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("auth: {secret: " + "ab" * 16 + "}\nsip: {port: 70000}\n")
    assert validate_config.main([str(config)]) == 1
    assert "sip.port" in capsys.readouterr().err



@pytest.mark.parametrize(("name", "title", "sip_port", "ports", "http_port", "state"), [
    ("ivr", "IVR server", 5090, (30000, 31999), 9062, None),
    ("meeting", "Meeting server", 5100, (32000, 33999), 9064, STATE),
    ("queue", "Queue server", 5110, (34000, 35999), 9065, STATE),
])
def test_application_server_renders_its_roles_values(rendered: Path, name: str, title: str, sip_port: int,
                                                     ports: tuple[int, int], http_port: int,
                                                     state: dict[str, str] | None) -> None:
    """The ivr, meeting and queue roles share pbx_service's appserver part, each with its own
    variables; the meeting (talker events) and queue (agents) servers reach the cluster's Redis."""
    config = yaml.safe_load((rendered / f"{name}.yml").read_text())
    assert set(config) == {"database", name, "auth", "http", "log", *(["state"] if state else [])}
    assert config.get("state") == state
    assert config[name] == {"sip_host": "198.18.0.11", "sip_port": sip_port, "rtp_host": "198.18.0.11",
                            "port_min": ports[0], "port_max": ports[1], "workers": 1, "rtp_timeout": 60,
                            "max_call_seconds": 3600, "recording_dir": f"/var/lib/pbx/{name}/recordings"}
    assert config["http"] == {"host": "198.18.0.11", "port": http_port}
    unit = (rendered / f"pbx-{name}.service").read_text()
    assert (f"Description=PBX {title} (SIP udp:198.18.0.11:{sip_port}, 1 workers, RTP {ports[0]}-{ports[1]}, "
            f"http://198.18.0.11:{http_port}/health)\n") in unit
    assert re.search(rf"^ExecStart=\S*/opt/pbx/venv/bin/pbx {name} --config /etc/pbx/{name}\.yml$", unit,
                     re.MULTILINE)


@pytest.fixture(scope="module")
def rendered_meeting_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The roles rendered again with a meeting server on SIP port 510, recording to /srv, behind NAT."""
    return render(tmp_path_factory.mktemp("rendered"), tmp_path_factory.mktemp("root"),
                  "pbx_meeting__sip_port=510", "pbx_meeting__recording_dir=/srv/meetings",
                  "pbx_meeting__public_address=203.0.113.60", "pbx_meeting__limit_nofile=8192",
                  '{"pbx_meeting__config_extra": {"meeting": {"rtp_timeout": 30}}}')


def test_application_server_below_1024_recording_elsewhere(rendered_meeting_elsewhere: Path) -> None:
    unit = (rendered_meeting_elsewhere / "pbx-meeting.service").read_text()
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in unit
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in unit
    assert "ReadWritePaths=/var/lib/pbx/meeting /srv/meetings\n" in unit
    assert "LimitNOFILE=8192\n" in unit
    section = yaml.safe_load((rendered_meeting_elsewhere / "meeting.yml").read_text())["meeting"]
    assert (section["sip_port"], section["public_address"]) == (510, "203.0.113.60")
    assert section["rtp_timeout"] == 30
    assert validate_config.main([str(rendered_meeting_elsewhere / "meeting.yml")]) == 0
    ivr_unit = (rendered_meeting_elsewhere / "pbx-ivr.service").read_text()
    assert "CapabilityBoundingSet=\n" in ivr_unit and "ReadWritePaths=/var/lib/pbx/ivr\n" in ivr_unit
