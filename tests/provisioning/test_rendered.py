"""What the roles render passes the checks the roles run on the hosts: systemd-analyze for the
units, `keepalived -t` for keepalived.conf, the daemons' config loader for their configs."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pbx_services.provisioning import validate_config
from tests.provisioning.conftest import REPO

VERIFY_UNIT = REPO / "ansible/roles/common/files/usr/local/libexec/pbx/pbx-verify-unit"


@pytest.mark.parametrize("unit", ["pbx-callmanager.service", "pbx-media.service"])
def test_unit_passes_systemd_analyze_verify(rendered: Path, unit: str) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run([str(VERIFY_UNIT), unit, str(rendered / unit)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("unit", ["pbx-callmanager.service", "pbx-media.service"])
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


@pytest.mark.parametrize("name", ["callmanager", "media"])
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


def test_callmanager_workers_share_redis_behind_the_sentinels(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "callmanager.yml").read_text())
    assert config["state"] == {"url": "redis+sentinel://:p%40ss%20word%2F0123456@198.18.0.11:26379,"
                                      "198.18.0.12:26379,198.18.0.13:26379/pbx/0"}
    assert config["callmanager"]["workers"] == 0


def test_validate_config_reports_the_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("auth: {secret: " + "ab" * 16 + "}\nsip: {port: 70000}\n")
    assert validate_config.main([str(config)]) == 1
    assert "sip.port" in capsys.readouterr().err
