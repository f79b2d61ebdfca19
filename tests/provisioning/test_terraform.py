"""terraform/: what can honestly be checked here, where no Terraform provider can be installed.

HCL parses (python-hcl2); the variables' validations and the address plan are run by
Terraform itself on terraform/tests/address_plan (the module's variables.tf and
addresses.tf, symlinked, without its MAAS resources), when a terraform binary is present.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.provisioning.conftest import REPO

TERRAFORM = REPO / "terraform"
ADDRESS_PLAN = TERRAFORM / "tests" / "address_plan"
hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed (requirements-test.txt)")


def tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


@pytest.mark.parametrize("path", tf_files(), ids=lambda path: str(path.relative_to(TERRAFORM)))
def test_hcl_parses(path: Path) -> None:
    with path.open() as file:
        hcl2.load(file)


def unquote(text: str) -> str:
    """python-hcl2 keeps the quotes of string literals and block labels."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def test_module_declares_the_maas_provider_and_its_variables() -> None:
    module = TERRAFORM / "modules" / "pbx_site"
    versions = hcl2.loads((module / "versions.tf").read_text())
    assert unquote(versions["terraform"][0]["required_providers"][0]["maas"]["source"]) == "canonical/maas"
    variables = {unquote(name) for block in hcl2.loads((module / "variables.tf").read_text())["variable"]
                 for name in block}
    assert {"site_name", "host_counts", "network", "maas", "ssh_user", "ssh_authorized_keys"} <= variables


def _inventory_output_keys(path: Path) -> dict[str, object]:
    outputs = {unquote(name): body for block in hcl2.loads(path.read_text())["output"]
               for name, body in block.items()}
    value = outputs["pbx_inventory"]["value"]
    return {key: sorted(item) if isinstance(item, dict) else None for key, item in value.items()}


def test_address_plan_output_has_the_module_output_shape() -> None:
    assert (_inventory_output_keys(ADDRESS_PLAN / "outputs.tf")
            == _inventory_output_keys(TERRAFORM / "modules" / "pbx_site" / "outputs.tf"))


def _terraform() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("no terraform binary")
    return found


def _plan(tmp_path: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_DATA_DIR=str(tmp_path / "data"), TF_IN_AUTOMATION="1", NO_COLOR="1",
               CHECKPOINT_DISABLE="1")
    terraform = _terraform()
    init = subprocess.run([terraform, "init", "-input=false", "-no-color"], cwd=ADDRESS_PLAN, env=env,
                          capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    argv = [terraform, "plan", "-input=false", "-no-color", "-var-file=production.tfvars",
            f"-out={tmp_path / 'plan'}"]
    argv += [f"-var={variable}" for variable in variables]
    return subprocess.run(argv, cwd=ADDRESS_PLAN, env=env, capture_output=True, text=True, check=False)


def test_address_plan_of_the_production_site(tmp_path: Path) -> None:
    result = _plan(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = subprocess.run([_terraform(), "show", "-json", str(tmp_path / "plan")], cwd=ADDRESS_PLAN,
                           env=dict(os.environ, TF_DATA_DIR=str(tmp_path / "data")),
                           capture_output=True, text=True, check=True)
    outputs = json.loads(shown.stdout)["planned_values"]["outputs"]
    hosts = outputs["hosts"]["value"]
    assert {name: host["address"] for name, host in hosts.items()} == {
        "paris-cm1": "10.20.0.11", "paris-cm2": "10.20.0.12", "paris-cm3": "10.20.0.13",
        "paris-db1": "10.20.0.21", "paris-media1": "10.20.0.31", "paris-media2": "10.20.0.32"}
    assert outputs["vip"]["value"] == "10.20.0.10"


@pytest.mark.parametrize(("variable", "message"), [
    ("host_counts={callmanager=2,media=1,database=1}", "callmanager must be 1"),
    ("host_counts={callmanager=3,media=0,database=1}", "media must be at least 1"),
    ("host_counts={callmanager=3,media=1,database=1,fax=1}", "host_counts keys must be roles"),
    ("host_counts={callmanager=3,media=12,database=1}", "from 0 to 9"),
    ('network={cidr="10.20.0.0/33"}', "IPv4 network in CIDR"),
    ('network={cidr="10.20.0.0/28"}', "leave 9 addresses per role"),
    ("site_name=Paris", "site_name must be"),
    ('ssh_authorized_keys=["not a key"]', "OpenSSH public key"),
    ("ssh_user=root", "other than root"),
])
def test_variables_are_validated(tmp_path: Path, variable: str, message: str) -> None:
    result = _plan(tmp_path, variable)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
