"""What the role portal leaves on each portal host: checked with testinfra (the scenario's
controller namespace asks over HTTPS, as a browser would)."""

import hashlib
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from portal_checks import (  # noqa: E402  (next to this file: molecule runs it as a path)
    CERTIFICATE,
    CONFIG,
    INVENTORY,
    PORT,
    PRIVATE_KEY,
    REPO,
    TLS_DIR,
    UNIT,
    controller_ns,
    probe,
)

VENV_PYTHON = "/opt/pbx/venv/bin/python"


def variables(host):
    return host.ansible.get_variables()


def address(host):
    return variables(host)["ansible_host"]


def expected(host, key):
    """The value the role was given for pbx_portal__<key>: the inventory's, else its default."""
    defaults = yaml.safe_load((REPO / "ansible" / "roles" / "portal" / "defaults" / "main.yml").read_text())
    return variables(host).get(f"pbx_portal__{key}", defaults[f"pbx_portal__{key}"])


@pytest.fixture
def certificate(host, tmp_path: Path) -> Path:
    """The host's certificate, on the controller side, for the probe to trust."""
    path = tmp_path / "portal.crt"
    path.write_text(host.file(CERTIFICATE).content_string)
    return path


def test_service_is_running_and_enabled(host):
    service = host.service(UNIT.removesuffix(".service"))
    assert service.is_running
    assert service.is_enabled


def test_unit_is_hardened_like_the_other_daemons(host):
    properties = ("User NoNewPrivileges ProtectSystem ProtectHome PrivateTmp PrivateDevices "
                  "CapabilityBoundingSet AmbientCapabilities ReadWritePaths UMask LimitNOFILE "
                  "RestrictAddressFamilies Restart").split()
    show = host.check_output(f"systemctl show {UNIT} " + " ".join(f"-p {name}" for name in properties))
    for setting in ("User=pbx", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=\n",
                    "AmbientCapabilities=\n",
                    "ReadWritePaths=/var/lib/pbx/portal\n", "UMask=0077", "LimitNOFILE=16384",
                    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "Restart=on-failure"):
        assert setting in show + "\n", setting
    unit = host.file(f"/etc/systemd/system/{UNIT}").content_string
    assert f"--certificate {CERTIFICATE} https://{address(host)}:{PORT}/health" in unit


def test_unit_passes_systemd_analyze(host):
    assert host.run(f"systemd-analyze verify --man=no /etc/systemd/system/{UNIT}").rc == 0


def test_gunicorn_master_and_workers_run_as_pbx(host):
    main_pid = host.check_output(f"systemctl show {UNIT} -p MainPID --value")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "pbx"
    workers = host.check_output(f"ps -o user= --ppid {main_pid}").split()
    assert workers == ["pbx"] * expected(host, "workers"), workers


def test_config_is_valid_private_and_complete(host):
    assert host.run(f"{VENV_PYTHON} -m pbx_services.provisioning.validate_config {CONFIG}").rc == 0
    config_file = host.file(CONFIG)
    assert (config_file.user, config_file.group, config_file.mode) == ("root", "pbx", 0o640)
    config = yaml.safe_load(config_file.content_string)
    assert config["portal"] == {"host": "0.0.0.0", "port": PORT, "workers": expected(host, "workers"),
                                "tls_cert": CERTIFICATE, "tls_key": PRIVATE_KEY}
    assert config["database"]["url"] == variables(host)["pbx_common__database_url"]
    assert config["auth"]["secret"] == variables(host)["pbx_common__auth_secret"]
    assert config["alerts"] == {"recipients": []}
    assert "smtp" not in config  # none given


def test_tls_files_are_private_and_match(host):
    directory, cert, key = host.file(TLS_DIR), host.file(CERTIFICATE), host.file(PRIVATE_KEY)
    assert (directory.user, directory.group, directory.mode) == ("root", "pbx", 0o750)
    assert (cert.user, cert.group, cert.mode) == ("root", "root", 0o644)
    assert (key.user, key.group, key.mode) == ("root", "pbx", 0o640)
    assert host.check_output(f"openssl x509 -noout -pubkey -in {CERTIFICATE}") == host.check_output(
        f"openssl pkey -pubout -in {PRIVATE_KEY}")


def test_self_signed_certificate_names_the_vip_and_every_portal_host(host):
    names = host.check_output(f"openssl x509 -noout -ext subjectAltName -in {CERTIFICATE}")
    for name in ("IP Address:198.18.7.10", "IP Address:198.18.7.11", "IP Address:198.18.7.12",
                 "DNS:mpo-portal1", "DNS:mpo-portal2", "IP Address:127.0.0.1"):
        assert name in names, (name, names)
    # Valid for the role's days (less the two the scenario may have taken).
    lifetime = (expected(host, "self_signed_days") - 2) * 86400
    assert host.run(f"openssl x509 -noout -in {CERTIFICATE} -checkend {lifetime}").rc == 0


def test_every_portal_host_serves_the_same_certificate(host, certificate: Path):
    der = ssl.PEM_cert_to_DER_cert(certificate.read_text())
    portal_hosts = yaml.safe_load(INVENTORY.read_text())["all"]["children"]["portal"]["hosts"]
    for name, other in portal_hosts.items():
        assert probe(variables(host), other["ansible_host"], certificate)["certificate_sha256"] == (
            hashlib.sha256(der).hexdigest()), name


def test_port_listens_on_every_address(host):
    assert host.socket(f"tcp://0.0.0.0:{PORT}").is_listening


def test_health_and_login_page_over_https(host, certificate: Path):
    """Asked by the host's address, which the certificate names (the probe checks the name)."""
    report = probe(variables(host), address(host), certificate)
    assert report["health"] == 200, report
    assert report["login_page"] == {"status": 200, "password_form": True, "csrf_token": True}, report


def test_plain_http_is_not_served(host):
    """The port speaks TLS only: a request in clear gets no HTTP answer."""
    asked = subprocess.run(
        ["ip", "netns", "exec", controller_ns(variables(host)), "python3", "-c",
         "import sys, urllib.request\n"
         f"try: print(urllib.request.urlopen('http://{address(host)}:{PORT}/health', timeout=5).status)\n"
         "except Exception as exc: print(type(exc).__name__)"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert asked != "200", asked
    assert not asked.isdigit(), asked


def test_initial_administrator_logs_in(host, certificate: Path):
    report = probe(variables(host), address(host), certificate, "--user", expected(host, "admin_name"),
                   "--password", expected(host, "admin_password"))
    assert report["login"]["logged_in"], report


def test_wrong_password_does_not_log_in(host, certificate: Path):
    report = probe(variables(host), address(host), certificate, "--user", expected(host, "admin_name"),
                   "--password", "not-the-password")
    assert not report["login"]["logged_in"], report


def test_initial_administrator_listed_once(host):
    rows = [line.split() for line in host.check_output("pbx admin list").splitlines()]
    assert len([row for row in rows if row[:1] == [expected(host, "admin_name")]]) == 1, rows


def test_state_directory_is_the_daemons(host):
    directory = host.file("/var/lib/pbx/portal")
    assert (directory.user, directory.group, directory.mode) == ("pbx", "pbx", 0o700)
    package = host.file("/etc/pbx/portal.package")
    assert package.content_string.startswith("pbx-services ")
