"""The role portal: what it renders (a unit hardened as the other daemons' and checked by
systemd-analyze, a config the daemons' loader accepts, a certificate naming the VIP and the
portal hosts), what it refuses before installing anything, the inventories' `portal` group and
site.yml's rolling play; and pbx-wait-healthy's pinned certificate against a real TLS server."""

import json
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pbx_services.provisioning import validate_config
from tests.provisioning.conftest import HERE, REPO, tool

VERIFY_UNIT = REPO / "ansible/roles/common/files/usr/local/libexec/pbx/pbx-verify-unit"
WAIT_HEALTHY = REPO / "ansible/roles/common/files/usr/local/libexec/pbx/pbx-wait-healthy"


def render_portal(out: Path, root: Path, *extra_vars: str) -> Path:
    """render_portal.yml into `out`, `extra_vars` ("key=value") over the site's settings."""
    for executable in ("opt/pbx/venv/bin/pbx", "usr/local/libexec/pbx/pbx-wait-healthy"):
        path = root / executable
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    extra = [argument for variable in extra_vars for argument in ("-e", variable)]
    result = subprocess.run([tool("ansible-playbook"), "-i", str(HERE / "render_inventory.yml"),
                             str(HERE / "render_portal.yml"), "-e", f"out={out}", "-e", f"root={root}",
                             "-e", "pbx_portal__group=callmanager", *extra],
                            capture_output=True, text=True, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_portal(tmp_path_factory.mktemp("portal"), tmp_path_factory.mktemp("root"))


def test_unit_passes_systemd_analyze_verify(rendered: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run([str(VERIFY_UNIT), "pbx-portal.service", str(rendered / "pbx-portal.service")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_unit_is_hardened_and_waits_for_https_health_with_the_certificate(rendered: Path) -> None:
    unit = (rendered / "pbx-portal.service").read_text()
    for setting in ("User=pbx\n", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ProtectHome=yes\n",
                    "PrivateTmp=yes\n", "PrivateDevices=yes\n", "Restart=on-failure\n",
                    "CapabilityBoundingSet=\n", "AmbientCapabilities=\n", "LimitNOFILE=65536\n",
                    "UMask=0077\n", "ReadWritePaths=/var/lib/pbx/portal\n",
                    "SystemCallFilter=@system-service\n"):
        assert setting in unit, setting
    assert re.search(r"^ExecStart=\S*/opt/pbx/venv/bin/pbx portal --config /etc/pbx/portal\.yml$", unit, re.M)
    health_wait = (r"^ExecStartPost=\S*/pbx-wait-healthy --timeout 60 "
                   r"--certificate /etc/pbx/tls/portal\.crt https://198\.18\.0\.11:8443/health$")
    assert re.search(health_wait, unit, re.M), unit


def test_config_serves_https_on_every_address_with_the_clusters_settings(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "portal.yml").read_text())
    assert config["portal"] == {"host": "0.0.0.0", "port": 8443, "workers": 2,
                                "tls_cert": "/etc/pbx/tls/portal.crt", "tls_key": "/etc/pbx/tls/portal.key"}
    assert config["database"]["url"].startswith("postgresql+psycopg://pbx:secret@/pbx?host=198.18.0.21:5432")
    assert config["auth"] == {"secret": "7465737473207265616c6c792061726520676f6f6420666f7220796f75212121"}
    assert config["alerts"] == {"recipients": []}
    assert config["state"]["url"].startswith("redis+sentinel://")  # the bus the alerts listen to
    assert "smtp" not in config


def test_config_passes_the_daemons_loader(rendered: Path) -> None:
    assert validate_config.main([str(rendered / "portal.yml")]) == 0


def test_self_signed_certificate_names_the_vip_and_every_portal_host(rendered: Path) -> None:
    names = (rendered / "portal-san.txt").read_text().strip().split(",")
    assert set(names) == {"IP:127.0.0.1", "DNS:localhost", "IP:198.18.0.10", "IP:198.18.0.11",
                          "IP:198.18.0.12", "IP:198.18.0.13", "DNS:cm-a", "DNS:cm-b", "DNS:cm-c"}


@pytest.fixture(scope="module")
def rendered_on_443_with_alerts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    smtp = {"host": "mail.example.com", "port": 587, "starttls": True, "username": "pbx",
            "password": "smtp-secret", "from_address": "pbx@example.com"}
    return render_portal(tmp_path_factory.mktemp("portal"), tmp_path_factory.mktemp("root"),
                         "pbx_portal__port=443", "pbx_portal__workers=4",
                         json.dumps({"pbx_portal__smtp": smtp,
                                     "pbx_portal__alert_recipients": ["noc@example.com"],
                                     "pbx_portal__self_signed_names": ["pbx.example.com"],
                                     "pbx_portal__config_extra": {"portal": {"session_minutes": 60}}}))


def test_port_443_gets_only_the_bind_capability(rendered_on_443_with_alerts: Path) -> None:
    unit = (rendered_on_443_with_alerts / "pbx-portal.service").read_text()
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in unit
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in unit
    assert "https://198.18.0.11:443/health\n" in unit


def test_smtp_recipients_and_extra_config_reach_the_config(rendered_on_443_with_alerts: Path) -> None:
    config = yaml.safe_load((rendered_on_443_with_alerts / "portal.yml").read_text())
    assert config["smtp"]["host"] == "mail.example.com" and config["smtp"]["starttls"] is True
    assert config["alerts"] == {"recipients": ["noc@example.com"]}
    assert (config["portal"]["port"], config["portal"]["workers"], config["portal"]["session_minutes"]) == (
        443, 4, 60)
    assert "DNS:pbx.example.com" in (rendered_on_443_with_alerts / "portal-san.txt").read_text()


def run_checks(*extra_vars: str) -> subprocess.CompletedProcess[str]:
    extra = [argument for variable in extra_vars for argument in ("-e", variable)]
    return subprocess.run([tool("ansible-playbook"), str(HERE / "check_portal.yml"), *extra],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"))


GOOD_PASSWORD = "pbx_portal__admin_password=a-long-enough-password"


def test_checks_pass_with_a_password_and_no_certificate() -> None:
    result = run_checks(GOOD_PASSWORD)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("extra_vars", "message"), [
    ((), "pbx_portal__admin_password is empty or shorter than 12 characters"),
    (("pbx_portal__admin_password=CHANGE-ME",), "pbx_portal__admin_password is empty or shorter than 12"),
    ((GOOD_PASSWORD, '{"pbx_portal__admin_name": "bad name"}'),
     'pbx_portal__admin_name "bad name" is not a name'),
    ((GOOD_PASSWORD, "pbx_portal__tls_certificate='-----BEGIN CERTIFICATE-----'"),
     "pbx_portal__tls_certificate and pbx_portal__tls_private_key: give both"),
    ((GOOD_PASSWORD, "pbx_portal__tls_certificate=not-a-pem", "pbx_portal__tls_private_key=not-a-pem"),
     "as PEM text"),
    ((GOOD_PASSWORD, "pbx_portal__port=70000"), "pbx_portal__port must be 1 to 65535 (got 70000)"),
    ((GOOD_PASSWORD, '{"pbx_portal__alert_recipients": ["noc@example.com"]}'),
     "pbx_portal__alert_recipients needs pbx_portal__smtp.host"),
    ((GOOD_PASSWORD, '{"pbx_portal__alert_recipients": ["noc@example.com"], "pbx_portal__state_url": "",'
                     ' "pbx_portal__smtp": {"host": "mail.example.com"}}'),
     "and pbx_portal__state_url (the site's Redis"),
])
def test_checks_refuse_with_the_variables_name(extra_vars: tuple[str, ...], message: str) -> None:
    result = run_checks(*extra_vars)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("site", ["lab", "production-example"])
def test_portal_group_is_the_call_managers(site: str) -> None:
    listing = json.loads(subprocess.run([tool("ansible-inventory"), "-i", f"inventory/{site}", "--list"],
                                        cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert listing["portal"]["children"] == ["callmanager"]
    assert "portal" in listing["pbx"]["children"]


def test_site_rolls_the_portal_play_one_host_at_a_time() -> None:
    plays = yaml.safe_load((REPO / "ansible" / "site.yml").read_text())
    [play] = [play for play in plays if play["hosts"] == "portal"]
    assert (play["serial"], play["any_errors_fatal"], play["roles"]) == (1, True, ["common", "portal"])
    names = [play["name"] for play in plays]
    assert names.index(play["name"]) > names.index("Call Managers behind the VIP")  # the schema first
    [restart] = yaml.safe_load((REPO / "ansible" / "restart-portal.yml").read_text())
    assert (restart["hosts"], restart["serial"], restart["any_errors_fatal"]) == ("portal", 1, True)


# -- pbx-wait-healthy with a pinned certificate, against a real TLS server on loopback --------


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True)
    return cert, key


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS /health on 127.0.0.1 with a certificate naming pbx.example.com (not the address)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory, "pbx.example.com")
    other, _ = self_signed(directory, "other.example.com")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert, other
    server.shutdown()
    server.server_close()


def wait_healthy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WAIT_HEALTHY), *args], capture_output=True, text=True, check=False, timeout=60)


def test_wait_healthy_accepts_the_pinned_certificate_at_an_address_it_does_not_name(tls_server) -> None:
    base, cert, _ = tls_server
    result = wait_healthy("--timeout", "0", "--certificate", str(cert), f"{base}/health")
    assert result.returncode == 0, result.stderr


def test_wait_healthy_refuses_another_certificate(tls_server) -> None:
    base, _, other = tls_server
    result = wait_healthy("--timeout", "0", "--certificate", str(other), f"{base}/health")
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr, result.stderr


def test_wait_healthy_without_the_certificate_trusts_only_the_systems_cas(tls_server) -> None:
    base, _, _ = tls_server
    result = wait_healthy("--timeout", "0", f"{base}/health")
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr, result.stderr


def test_wait_healthy_names_a_missing_certificate_file(tls_server, tmp_path: Path) -> None:
    base, _, _ = tls_server
    result = wait_healthy("--timeout", "0", "--certificate", str(tmp_path / "absent.crt"), f"{base}/health")
    assert result.returncode == 2
    expected = f"pbx-wait-healthy: --certificate {tmp_path / 'absent.crt'}: "
    assert result.stderr.startswith(expected), result.stderr
