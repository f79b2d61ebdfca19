"""`pbx inventory from-terraform`: the Ansible inventory of the hosts Terraform made."""

import argparse
import sys
from pathlib import Path

from pbx_services.cli.common import EXIT_OK, CommandError, Subparsers
from pbx_services.provisioning.inventory import InventoryError, inventory_from_terraform


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("inventory", help="write an Ansible inventory of a site")
    commands = parser.add_subparsers(dest="inventory_command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "from-terraform", help="the inventory of the hosts Terraform made (terraform/modules/pbx_site)",
        description="Turn `terraform output -json` of a site using terraform/modules/pbx_site into the "
        "hosts.yml of an Ansible inventory for ansible/site.yml (see terraform/README.md).")
    convert.add_argument("file", metavar="FILE", help="the saved `terraform output -json` ('-': stdin)")
    convert.add_argument("--output", type=Path, metavar="FILE", help="write it there (default: stdout)")
    convert.set_defaults(run=_inventory_from_terraform)


def _inventory_from_terraform(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        inventory = inventory_from_terraform(text)
    except InventoryError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    if args.output is None:
        sys.stdout.write(inventory)
    else:
        args.output.write_text(inventory, encoding="utf-8")
    return EXIT_OK
