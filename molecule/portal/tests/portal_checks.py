"""What the portal scenario's tests share: the paths the role installs, and the HTTPS probe
(scripts/lab/portal_probe.py) run in the scenario's controller namespace, where the browsers
and operators would be."""

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
INVENTORY = Path(__file__).resolve().parents[1] / "inventory" / "hosts.yml"
PROBE = REPO / "scripts" / "lab" / "portal_probe.py"
UNIT = "pbx-portal.service"
CONFIG = "/etc/pbx/portal.yml"
TLS_DIR = "/etc/pbx/tls"
CERTIFICATE = f"{TLS_DIR}/portal.crt"
PRIVATE_KEY = f"{TLS_DIR}/portal.key"
PORT = 8443


def controller_ns(variables: dict) -> str:
    return f"{variables['lab_name']}-ctl"


def probe(variables: dict, address: str, certificate: Path, *args: str) -> dict:
    """The probe's report of https://ADDRESS:PORT, trusting `certificate` alone."""
    result = subprocess.run(["ip", "netns", "exec", controller_ns(variables), "python3", str(PROBE),
                             f"https://{address}:{PORT}", "--certificate", str(certificate), *args],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
