"""`pbx voicemail enable|disable|list|messages`: users' mailboxes.

A mailbox takes the calls its user forwards to `voicemail` (`pbx user forward EXT --no-answer
voicemail`); the user hears its messages by dialling *97 and entering the PIN. New messages are
emailed (WAV attached) when the mailbox has an address and the `smtp` section of pbx.yml names
a server.
"""

import argparse

from pbx_services.cli.common import EXIT_OK, Subparsers, data_dir_option, open_data_dir, print_table
from pbx_services.cli.prompts import tenant_option
from pbx_services.cluster.voicemail import MailboxInfo, VoicemailService


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("voicemail", help="users' mailboxes: enable, disable, list, messages")
    commands = parser.add_subparsers(dest="voicemail_command", required=True, metavar="COMMAND")
    common = [data_dir_option(), tenant_option()]

    enable = commands.add_parser(
        "enable", parents=common, help="give a user a mailbox, or change its settings",
        description="Give user EXT a mailbox (or change the settings given). Calls forwarded to "
        "'voicemail' hear the greeting and leave a message; the user dials *97 and its PIN to hear them.")
    enable.add_argument("extension", metavar="EXT")
    enable.add_argument("--pin", metavar="DIGITS", help="4 to 16 digits (needed for a new mailbox)")
    enable.add_argument("--email", metavar="ADDRESS",
                        help="where new messages are sent, WAV attached (default: the user's email; '' none)")
    enable.add_argument("--greeting", metavar="PROMPT",
                        help="a prompt of the tenant (pbx prompt) played as the greeting ('' the spoken one)")
    enable.add_argument("--max-messages", type=int, metavar="N",
                        help="messages kept at most (1-10000, default 100); then callers hear it is full")
    enable.add_argument("--max-seconds", type=int, metavar="S",
                        help="longest message in seconds (5-3600, default 180)")
    enable.set_defaults(run=_enable)

    disable = commands.add_parser("disable", parents=common,
                                  help="remove a user's mailbox, its messages and its forwards to voicemail")
    disable.add_argument("extension", metavar="EXT")
    disable.set_defaults(run=_disable)

    listing = commands.add_parser("list", parents=common, help="list the mailboxes and their message counts")
    listing.set_defaults(run=_list)

    messages = commands.add_parser("messages", parents=common, help="list the messages of a mailbox")
    messages.add_argument("extension", metavar="EXT")
    messages.set_defaults(run=_messages)


def describe(mailbox: MailboxInfo) -> str:
    return (f"{mailbox.extension}@{mailbox.tenant_domain}: email {mailbox.email or 'none'}, greeting "
            f"{mailbox.greeting_prompt or 'spoken'}, up to {mailbox.max_messages} messages of "
            f"{mailbox.max_seconds} s")


def _enable(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        mailbox = opened.service(VoicemailService).enable(
            args.extension, pin=args.pin, email=args.email, greeting_prompt=args.greeting,
            max_messages=args.max_messages, max_seconds=args.max_seconds, tenant_domain=args.tenant)
    print(f"voicemail of {describe(mailbox)}")
    return EXIT_OK


def _disable(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        paths = opened.service(VoicemailService).disable(args.extension, tenant_domain=args.tenant)
        directory = opened.config.ivr.recording_dir / "voicemail"
        for path in paths:
            (directory / path).unlink(missing_ok=True)
    print(f"voicemail of {args.extension} removed ({len(paths)} messages deleted)")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        mailboxes = opened.service(VoicemailService).list_mailboxes(tenant_domain=args.tenant)
    if not mailboxes:
        print("no mailboxes")
        return EXIT_OK
    print_table(("EXTENSION", "DOMAIN", "NEW", "SAVED", "EMAIL", "MAX MESSAGES", "MAX SECONDS"),
                [(m.extension, m.tenant_domain, str(m.new), str(m.saved), m.email or "-", str(m.max_messages),
                  str(m.max_seconds)) for m in mailboxes])
    return EXIT_OK


def _messages(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        messages = opened.service(VoicemailService).messages(args.extension, tenant_domain=args.tenant)
        directory = opened.config.ivr.recording_dir / "voicemail"
    if not messages:
        print("no messages")
        return EXIT_OK
    print_table(("ID", "STATUS", "FROM", "RECEIVED", "SECONDS", "FILE"),
                [(str(m.id), m.status.value, m.caller, m.received_at.isoformat(timespec="seconds"),
                  f"{m.duration:.1f}", str(directory / m.path)) for m in messages])
    return EXIT_OK
