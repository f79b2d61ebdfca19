"""The playbooks, roles, inventories and molecule scenarios are yamllint and ansible-lint clean."""

import os
import subprocess

from tests.provisioning.conftest import REPO, tool

LINTED = ["ansible", "inventory", "molecule", "tests/provisioning"]


def test_yamllint_clean() -> None:
    result = subprocess.run([tool("yamllint"), "--strict", "-c", "ansible/.yamllint", *LINTED],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_ansible_lint_clean() -> None:
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "ansible" / "roles"), NO_COLOR="1")
    result = subprocess.run([tool("ansible-lint"), "--nocolor", "-c", "ansible/.ansible-lint", *LINTED],
                            cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_site_playbook_syntax() -> None:
    for inventory in ("inventory/lab", "inventory/production-example"):
        result = subprocess.run([tool("ansible-playbook"), "--syntax-check", "-i", inventory,
                                 "ansible/site.yml"], cwd=REPO, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
