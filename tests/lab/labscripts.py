"""What the lab suites share: the lab's scripts loaded as modules, the paths, the marks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

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
