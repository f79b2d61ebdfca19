"""`pbx ivr add|list|del` and `pbx schedule add|list|del`: the IVR menus and the business hours
they follow; `pbx ivr --config FILE` runs the IVR server."""

import argparse
from collections.abc import Sequence
from datetime import date

from pbx_services.cli.common import (
    EXIT_OK,
    CommandError,
    Subparsers,
    data_dir_option,
    delete_command,
    list_command,
    open_data_dir,
    print_table,
    yes_no,
)
from pbx_services.cli.daemons import add_application_server_commands
from pbx_services.cli.prompts import tenant_option
from pbx_services.cluster.ivr import IvrMenuInfo, IvrService, ScheduleInfo, ScheduleService

DESTINATIONS_HELP = "an extension number, ivr:N, queue:N, meeting:N, dial, repeat or hangup"


def add_commands(subparsers: Subparsers) -> None:
    _add_ivr_commands(subparsers)
    _add_schedule_commands(subparsers)


def _add_ivr_commands(subparsers: Subparsers) -> None:
    commands = add_application_server_commands(subparsers, role="ivr", server="IVR server",
                                               things="IVR menus", what_they_are="auto-attendants")
    common = [data_dir_option(), tenant_option()]

    add = commands.add_parser(
        "add", parents=common, help="add an IVR menu",
        description="Add the IVR menu reached by dialling NUMBER. Its greeting plays and the caller presses "
        f"the digits of an option, whose destination is {DESTINATIONS_HELP}. Prompts come from 'pbx prompt'.",
    )
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--greeting", required=True, metavar="PROMPT", help="the prompt played first")
    add.add_argument("--option", action="append", default=[], metavar="DIGITS=DESTINATION", dest="options",
                     help="what pressing DIGITS (0-9 and *, up to 8) does; repeat for each option")
    add.add_argument("--timeout", type=int, default=5, metavar="S",
                     help="seconds to wait for a first digit after the greeting (1-60, default 5)")
    add.add_argument("--inter-digit-timeout", type=int, default=3, metavar="S",
                     help="seconds after a digit that end the input (1-60, default 3)")
    add.add_argument("--retries", type=int, default=3, metavar="N",
                     help="times the greeting plays again after no or a wrong choice (0-10, default 3)")
    add.add_argument("--invalid-prompt", metavar="P", help="prompt played after a wrong choice")
    add.add_argument("--timeout-prompt", metavar="P", help="prompt played when nothing was pressed")
    add.add_argument("--final", default="hangup", metavar="DEST", dest="final_destination",
                     help="where the call goes when the retries are used up (default: hangup)")
    add.add_argument("--dial-by-extension", action="store_true",
                     help="digits that are no option but an extension of the tenant call that extension")
    add.add_argument("--schedule", metavar="NAME", help="business hours ('pbx schedule') the menu is open")
    add.add_argument("--closed", metavar="DEST", dest="closed_destination",
                     help="where calls go outside the schedule's hours (with --schedule)")
    add.add_argument("--name", metavar="TEXT", help="what the menu is for")
    add.add_argument("--replace", action="store_true", help="replace the menu of that number")
    add.set_defaults(run=_ivr_add)

    list_command(commands, common, IvrService, IvrService.list_menus, help="list the IVR menus",
                 none="no IVR menus", show=_show_menus)
    delete_command(commands, common, IvrService, IvrService.delete_menu, help="delete an IVR menu",
                   what="IVR menu")


def _add_schedule_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("schedule",
                                   help="add, list and delete the business hours IVR menus follow")
    commands = parser.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    common = [data_dir_option(), tenant_option()]

    add = commands.add_parser(
        "add", parents=common, help="add a schedule",
        description="Add business hours: clauses separated by ';', each days and time ranges, like "
        "'mon-fri 09:00-17:00; sat 10:00-12:00' ('daily', 'fri-mon', 'mon,wed'; a range ending before it "
        "starts runs past midnight).",
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--hours", required=True, metavar="TEXT",
                     help="like 'mon-fri 09:00-17:00; sat 10:00-12:00'")
    add.add_argument("--timezone", default="UTC", metavar="ZONE",
                     help="IANA time zone of the hours, like Europe/Paris (default: UTC)")
    add.add_argument("--holiday", type=_iso_date, action="extend", nargs="+", default=[], metavar="DATE",
                     dest="holidays", help="a day closed all day, like 2026-12-25; several may follow")
    add.set_defaults(run=_schedule_add)

    list_command(commands, common, ScheduleService, ScheduleService.list, help="list the schedules",
                 none="no schedules", show=_show_schedules)
    delete_command(commands, common, ScheduleService, ScheduleService.delete,
                   help="delete a schedule no menu follows", what="schedule", key="name")



def _ivr_add(args: argparse.Namespace) -> int:
    options = _options(args.options)
    with open_data_dir(args) as opened:
        menu = opened.service(IvrService).add_menu(
            args.number, greeting=args.greeting, options=options, timeout=args.timeout,
            inter_digit_timeout=args.inter_digit_timeout, retries=args.retries,
            invalid_prompt=args.invalid_prompt, timeout_prompt=args.timeout_prompt,
            final_destination=args.final_destination, dial_by_extension=args.dial_by_extension,
            schedule=args.schedule, closed_destination=args.closed_destination, name=args.name,
            tenant_domain=args.tenant, replace=args.replace,
        )
    choices = _describe_options(menu) + (" and extensions" if menu.dial_by_extension else "")
    print(f"added IVR menu {menu.number} of {menu.tenant_domain}: {choices.strip()}")
    return EXIT_OK


def _options(texts: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for text in texts:
        digits, equals, destination = text.partition("=")
        digits = digits.strip()
        if not equals or not digits or not destination.strip():
            raise CommandError(f"--option {text!r}: expected DIGITS=DESTINATION, like 1=201 or 9=repeat")
        if digits in options:
            raise CommandError(f"--option {digits} is given twice")
        options[digits] = destination
    return options


def _describe_options(menu: IvrMenuInfo) -> str:
    return " ".join(f"{digits}={destination}" for digits, destination in menu.options.items())


def _show_menus(menus: Sequence[IvrMenuInfo]) -> None:
    print_table(
        ("NUMBER", "NAME", "GREETING", "OPTIONS", "BY EXTENSION", "FINAL", "SCHEDULE", "CLOSED"),
        [
            (menu.number, menu.name or "", menu.greeting, _describe_options(menu),
             yes_no(menu.dial_by_extension), menu.final_destination, menu.schedule or "",
             menu.closed_destination or "")
            for menu in menus
        ],
    )


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-25") from None



def _schedule_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        schedule = opened.service(ScheduleService).add_schedule(
            args.name, args.hours, args.timezone, args.holidays, tenant_domain=args.tenant)
    print(f"added schedule {schedule.name}")
    return EXIT_OK


def _show_schedules(schedules: Sequence[ScheduleInfo]) -> None:
    print_table(
        ("NAME", "HOURS", "TIMEZONE", "HOLIDAYS"),
        [(schedule.name, schedule.hours, schedule.timezone, " ".join(map(str, schedule.holidays)))
         for schedule in schedules],
    )
