"""Fixtures of the provisioning tests: the repository's paths and the roles' templates rendered."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def tool(name: str) -> str:
    """The path of a command-line tool, from PATH or next to this Python; skip the test without it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -r requirements-test.txt)")
    return found


def render(out: Path, root: Path, *extra_vars: str) -> Path:
    """The roles' templates rendered into `out` (render_templates.yml), `extra_vars` ("key=value")
    over the site's settings; the paths the units execute exist under `root` as dummy executables,
    for systemd-analyze."""
    playbook = tool("ansible-playbook")
    for executable in ("opt/pbx/venv/bin/pbx", "usr/local/libexec/pbx/pbx-wait-healthy"):
        path = root / executable
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    extra = [argument for variable in extra_vars for argument in ("-e", variable)]
    result = subprocess.run(
        [playbook, "-i", str(HERE / "render_inventory.yml"), str(HERE / "render_templates.yml"),
         "-e", f"out={out}", "-e", f"root={root}", *extra],
        capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units, configs and keepalived.conf the roles render, with their defaults, for a
    Call Manager cm-a of three (render_inventory.yml)."""
    return render(tmp_path_factory.mktemp("rendered"), tmp_path_factory.mktemp("root"))
