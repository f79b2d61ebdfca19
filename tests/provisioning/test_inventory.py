"""`pbx inventory from-terraform`: a recorded `terraform output -json` turned into an inventory."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pbx_services import cli
from pbx_services.provisioning.inventory import (
    InventoryError,
    inventory_from_terraform,
    parse_terraform_output,
)
from tests.provisioning.conftest import tool

# Recorded with Terraform 1.11.4 from terraform/tests/address_plan (production.tfvars):
#   terraform apply -state=S -var-file=production.tfvars && terraform output -json -state=S
RECORDED = Path(__file__).parent / "data" / "terraform_output_paris.json"


def recorded() -> dict:
    return json.loads(RECORDED.read_text())


def with_inventory(change) -> str:
    document = recorded()
    change(document["pbx_inventory"]["value"])
    return json.dumps(document)


def test_inventory_groups_hosts_by_role() -> None:
    inventory = yaml.safe_load(inventory_from_terraform(RECORDED.read_text()))
    groups = inventory["all"]["children"]
    assert groups["callmanager"]["hosts"] == {"paris-cm1": {"ansible_host": "10.20.0.11"},
                                              "paris-cm2": {"ansible_host": "10.20.0.12"},
                                              "paris-cm3": {"ansible_host": "10.20.0.13"}}
    assert groups["media"]["hosts"] == {"paris-media1": {"ansible_host": "10.20.0.31"},
                                        "paris-media2": {"ansible_host": "10.20.0.32"}}
    assert groups["database"]["hosts"] == {"paris-db1": {"ansible_host": "10.20.0.21"}}
    assert groups["callmanager"]["vars"] == {"pbx_callmanager__vip": "10.20.0.10",
                                             "pbx_keepalived__vip": "10.20.0.10/24",
                                             "pbx_keepalived__interface": "eno1"}
    for later in ("ivr", "queue", "meeting", "im", "dataflow"):
        assert groups[later]["hosts"] == {}
    assert groups["redis_sentinel"]["children"] == {"callmanager": {}}
    assert groups["portal"]["children"] == {"callmanager": {}}  # site.yml's portal play finds them
    assert inventory["all"]["vars"] == {"site_network": "10.20.0.0/24", "ansible_user": "deploy",
                                        "ansible_become": True}


def test_ansible_reads_the_generated_inventory(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(inventory_from_terraform(RECORDED.read_text()))
    listing = json.loads(subprocess.run([tool("ansible-inventory"), "-i", str(hosts), "--list"],
                                        capture_output=True, text=True, check=True).stdout)
    assert sorted(listing["callmanager"]["hosts"]) == ["paris-cm1", "paris-cm2", "paris-cm3"]
    assert listing["_meta"]["hostvars"]["paris-cm2"]["pbx_keepalived__vip"] == "10.20.0.10/24"
    assert sorted(listing["pbx"]["children"]) == ["callmanager", "dataflow", "im", "ivr", "media",
                                                   "meeting", "portal", "queue"]
    assert sorted(listing["portal"]["children"]) == ["callmanager"]


def test_the_bare_output_value_is_accepted() -> None:
    bare = json.dumps(recorded()["pbx_inventory"]["value"])
    assert parse_terraform_output(bare) == parse_terraform_output(RECORDED.read_text())


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not JSON"),
    ('{"hosts": {"value": {}}}', "no pbx_inventory output (outputs: hosts)"),
    (with_inventory(lambda value: value.update(format="pbx-inventory/9")),
     "this pbx reads 'pbx-inventory/1'"),
    (with_inventory(lambda value: value["hosts"]["paris-cm1"].update(role="fax")), "'fax' is none of"),
    (with_inventory(lambda value: value["hosts"]["paris-cm1"].update(address="10.9.0.1")),
     "outside the network 10.20.0.0/24"),
    (with_inventory(lambda value: value["hosts"]["paris-cm1"].update(address="10.20.0.10")), "given twice"),
    (with_inventory(lambda value: value["network"].update(cidr="10.20.0.0/33")), "network.cidr"),
    (with_inventory(lambda value: [value["hosts"].pop(name) for name in ("paris-media1", "paris-media2")]),
     "no media host"),
    (with_inventory(lambda value: value["hosts"].update({"Bad_Name": value["hosts"]["paris-cm1"]})),
     "'Bad_Name' is not a host name"),
])
def test_bad_outputs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_terraform_output(text)


def test_cli_writes_the_inventory(tmp_path: Path) -> None:
    output = tmp_path / "hosts.yml"
    assert cli.main(["inventory", "from-terraform", str(RECORDED), "--output", str(output)]) == 0
    assert output.read_text() == inventory_from_terraform(RECORDED.read_text())


def test_cli_reports_a_bad_output_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "output.json"
    bad.write_text('{"hosts": {}}')
    assert cli.main(["inventory", "from-terraform", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"pbx: {bad}: no pbx_inventory output")
