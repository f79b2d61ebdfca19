"""What the lab suites share: the lab's scripts loaded as modules, the paths, the marks."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "scripts" / "lab"
INVENTORY = REPO / "inventory" / "lab"

LAB_MARKS = [
    pytest.mark.slow,
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (namespaces, mounts, nspawn)"),
    pytest.mark.skipif(shutil.which("systemd-nspawn") is None or shutil.which("debootstrap") is None
                       or shutil.which("sipp") is None or shutil.which("ansible-playbook") is None,
                       reason="needs systemd-nspawn, debootstrap, sipp and ansible (install-test-deps.sh)"),
]
"""Every lab test's marks (add a timeout): slow, lab, and skipped where the lab cannot run."""


def _load(name: str) -> ModuleType:
    """A script of scripts/lab/ as a module (they are commands, not a package)."""
    spec = importlib.util.spec_from_file_location(name, LAB_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


lab = _load("lab")
smoke = _load("smoke_call")


def health(address: str, port: int = 9060) -> dict[str, Any]:
    """A daemon's /health on `port` (the Call Managers' by default; whatever its status code),
    asked from the lab's controller; {} if it does not answer."""
    url = f"http://{address}:{port}/health"
    body = subprocess.run(["ip", "netns", "exec", lab.Lab(lab.DEFAULT_LAB).controller_ns, "python3", "-c",
                           "import urllib.request,urllib.error\n"
                           f"try: print(urllib.request.urlopen('{url}', timeout=3).read().decode())\n"
                           "except urllib.error.HTTPError as e: print(e.read().decode())"],
                          capture_output=True, text=True, check=False, timeout=120).stdout
    return json.loads(body) if body.strip().startswith("{") else {}
