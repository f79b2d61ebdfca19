"""An Ansible inventory from the Terraform outputs of a site (`pbx inventory from-terraform`).

The Terraform module `terraform/modules/pbx_site` outputs `pbx_inventory`: the site's
hosts with their role and address, the network and the VIP. `terraform output -json`
wraps every output as `{"value": ..., "type": ..., "sensitive": ...}`; this module reads
that (or the bare `pbx_inventory` value), checks it, and writes the inventory
`ansible/site.yml` runs against: groups by function (as in inventory/production-example),
each host with its `ansible_host`, and the VIP and network as group variables. Secrets
and site settings stay in the site's group_vars, which this file never touches.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

FORMAT = "pbx-inventory/1"
OUTPUT_NAME = "pbx_inventory"
ROLES = ("callmanager", "media", "database", "ivr", "queue", "meeting", "im", "dataflow")
"""Inventory groups, one per role, in the order site.yml deploys them."""
DAEMON_ROLES = tuple(role for role in ROLES if role != "database")
"""The groups whose hosts run a PBX daemon (the `pbx` group)."""
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class InventoryError(Exception):
    """The Terraform output cannot be turned into an inventory; the message says why."""


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    address: str
    fqdn: str | None


@dataclass(frozen=True)
class Site:
    name: str
    network: ipaddress.IPv4Network
    vip: str
    interface: str
    ssh_user: str
    hosts: tuple[Host, ...]

    def hosts_of(self, role: str) -> list[Host]:
        return [host for host in self.hosts if host.role == role]


def parse_terraform_output(text: str) -> Site:
    """The site described by `terraform output -json` (or by the bare pbx_inventory value)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"not JSON (from `terraform output -json`): {exc}") from None
    if not isinstance(document, dict):
        raise InventoryError("expected a JSON object (from `terraform output -json`)")
    if "format" not in document:
        if OUTPUT_NAME not in document:
            names = ", ".join(sorted(document)) or "none"
            raise InventoryError(f"no {OUTPUT_NAME} output (outputs: {names}): is this the output of a "
                                 "configuration using terraform/modules/pbx_site?")
        wrapped = document[OUTPUT_NAME]
        document = wrapped.get("value") if isinstance(wrapped, dict) and "value" in wrapped else wrapped
    if not isinstance(document, dict):
        raise InventoryError(f"{OUTPUT_NAME} is not an object")
    return _site(document)


def _site(document: dict[str, Any]) -> Site:
    if document.get("format") != FORMAT:
        raise InventoryError(f"{OUTPUT_NAME}.format is {document.get('format')!r}; this pbx reads {FORMAT!r}")
    network_doc = _field(document, "network", dict)
    try:
        network = ipaddress.IPv4Network(_field(network_doc, "cidr", str, "network."))
    except ValueError as exc:
        raise InventoryError(f"{OUTPUT_NAME}.network.cidr: {exc}") from None
    vip = _address(_field(network_doc, "vip", str, "network."), network, "network.vip")
    hosts = []
    for name, host_doc in sorted(_field(document, "hosts", dict).items()):
        where = f"hosts.{name}."
        if not HOST_NAME.match(name):
            raise InventoryError(f"{OUTPUT_NAME}.hosts: {name!r} is not a host name")
        if not isinstance(host_doc, dict):
            raise InventoryError(f"{OUTPUT_NAME}.{where[:-1]} is not an object")
        role = _field(host_doc, "role", str, where)
        if role not in ROLES:
            raise InventoryError(f"{OUTPUT_NAME}.{where}role: {role!r} is none of {', '.join(ROLES)}")
        fqdn = host_doc.get("fqdn")
        address = _address(_field(host_doc, "address", str, where), network, where + "address")
        hosts.append(Host(name=name, role=role, address=address,
                          fqdn=fqdn if isinstance(fqdn, str) and fqdn else None))
    addresses = [host.address for host in hosts] + [vip]
    duplicates = sorted({address for address in addresses if addresses.count(address) > 1})
    if duplicates:
        raise InventoryError(f"{OUTPUT_NAME}: address given twice (hosts, VIP): {', '.join(duplicates)}")
    site = Site(name=str(document.get("site", "site")), network=network, vip=vip,
                interface=str(network_doc.get("interface") or "eth0"),
                ssh_user=str(document.get("ssh_user") or "root"), hosts=tuple(hosts))
    for role in ("callmanager", "media", "database"):
        if not site.hosts_of(role):
            raise InventoryError(f"{OUTPUT_NAME}: no {role} host; a site needs at least one")
    return site


def _field(document: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = document.get(key)
    if not isinstance(value, kind):
        names: dict[type, str] = {dict: "an object", str: "a string"}
        expected = names.get(kind, kind.__name__)
        raise InventoryError(f"{OUTPUT_NAME}.{where}{key} is missing or not {expected}")
    return value


def _address(value: str, network: ipaddress.IPv4Network, where: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise InventoryError(f"{OUTPUT_NAME}.{where}: {value!r} is not an IPv4 address") from None
    if address not in network:
        raise InventoryError(f"{OUTPUT_NAME}.{where}: {value} is outside the network {network}")
    return str(address)


def render_inventory(site: Site) -> str:
    """The site as a YAML inventory (hosts.yml) for ansible/site.yml."""
    children: dict[str, Any] = {}
    for role in ROLES:
        group: dict[str, Any] = {"hosts": {host.name: {"ansible_host": host.address}
                                           for host in site.hosts_of(role)}}
        if role == "callmanager":
            group["vars"] = {"pbx_callmanager__vip": site.vip,
                             "pbx_keepalived__vip": f"{site.vip}/{site.network.prefixlen}",
                             "pbx_keepalived__interface": site.interface}
        children[role] = group
    # The state store and the web portal on the Call Managers, as in inventory/production-example.
    children["redis"] = {"children": {"callmanager": {}}}
    children["redis_sentinel"] = {"children": {"callmanager": {}}}
    children["portal"] = {"children": {"callmanager": {}}}
    children["pbx"] = {"children": {role: {} for role in (*DAEMON_ROLES, "portal")}}
    document = {"all": {"vars": {"site_network": str(site.network), "ansible_user": site.ssh_user,
                                 "ansible_become": True},
                        "children": children}}
    header = (f"# Generated by `pbx inventory from-terraform` for the site {site.name}: the hosts and\n"
              "# addresses Terraform made. Generate it again after `terraform apply` instead of editing\n"
              "# it; settings and secrets go in group_vars/ (see inventory/production-example).\n")
    fqdns = [f"#   {host.name}: {host.fqdn}" for host in site.hosts if host.fqdn]
    if fqdns:
        header += "# FQDNs:\n" + "\n".join(fqdns) + "\n"
    return header + "---\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def inventory_from_terraform(text: str) -> str:
    """`terraform output -json` of a site in, its Ansible inventory out."""
    return render_inventory(parse_terraform_output(text))
