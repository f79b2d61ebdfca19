"""`pbx meeting add|list|del`: the meeting rooms; `pbx meeting --config FILE` runs the meeting server;
`pbx meeting participants|mute|kick|lock|record|end`: a meeting in progress.

`pbx meeting list` shows the PINs: administrators hand them out, and the meeting servers
need them in clear in the database, which only the PBX's user can read (unlike users'
passwords, of which only digest hashes are kept, so `pbx user list` has none to show).

A meeting in progress lives on one meeting server: the commands on it ask every meeting
server of the servers table (at its HTTP port) for the room, then send the request to the one
that has it, through the control API (`runtime.control`, the token from `auth.secret`).
"""

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

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
from pbx_services.cluster.control_client import ControlUnreachable, NotOnAnyServer, control_request, locate
from pbx_services.cluster.meetings import MeetingRoomInfo, MeetingService
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry, ServerService


def add_commands(subparsers: Subparsers) -> None:
    commands = add_application_server_commands(subparsers, role="meeting", server="meeting server",
                                               things="meeting rooms", what_they_are="audio conferences")
    common = [data_dir_option(), tenant_option()]

    add = commands.add_parser(
        "add", parents=common, help="add a meeting room",
        description="Add the meeting room reached by dialling NUMBER. Callers enter the PIN (or the "
        "moderator PIN, to be a moderator) followed by #. In the room: 1 mutes or unmutes, 2 says how many "
        "are in; moderators also have 3 (lock), 4 (mute everyone else) and 9 (end the meeting).",
    )
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--pin", metavar="DIGITS", help="what participants enter to join, 1 to 16 digits "
                     "(default: none, anyone joins)")
    add.add_argument("--moderator-pin", metavar="DIGITS",
                     help="what moderators enter to join, 1 to 16 digits")
    add.add_argument("--max", type=int, default=50, metavar="N", dest="max_participants",
                     help="participants at most (2-500, default 50); the next caller hears the room is full")
    add.add_argument("--pin-tries", type=int, default=3, metavar="N",
                     help="wrong PINs before the caller is hung up (1-10, default 3)")
    add.add_argument("--wait-for-moderator", action="store_true",
                     help="participants hear music until a moderator joins (needs --moderator-pin)")
    add.add_argument("--end-with-moderator", action="store_true",
                     help="the meeting ends when the last moderator leaves (needs --moderator-pin)")
    add.add_argument("--mute-on-entry", action="store_true", help="participants join muted")
    add.add_argument("--no-entry-tones", action="store_false", dest="entry_tones",
                     help="no tone when someone joins or leaves")
    add.add_argument("--record", action="store_true", help="record each meeting's mix to a WAV")
    add.add_argument("--name", metavar="TEXT", help="what the room is for")
    add.add_argument("--replace", action="store_true", help="replace the room of that number")
    add.set_defaults(run=_meeting_add)

    list_command(commands, common, MeetingService, MeetingService.list_rooms,
                 help="list the meeting rooms, their PINs included", none="no meeting rooms",
                 show=_show_rooms)
    delete_command(commands, common, MeetingService, MeetingService.delete_room, help="delete a meeting room",
                   what="meeting room")

    participants = commands.add_parser(
        "participants", parents=common, help="who is in the meeting of a room now",
        description="The meeting in progress in room NUMBER: its server, whether it is locked or "
        "recorded, and its participants with their numbers (for mute and kick).")
    participants.add_argument("number", metavar="NUMBER")
    participants.add_argument("--json", action="store_true", help="the meeting as a JSON object")
    participants.set_defaults(run=_meeting_control, action=None)
    for name, help_text, undo in (("mute", "mute a participant (the others stop hearing them)", "--unmute"),
                                  ("kick", "remove a participant from the meeting", None)):
        command = commands.add_parser(name, parents=common, help=help_text)
        command.add_argument("number", metavar="NUMBER")
        command.add_argument("participant", metavar="PARTICIPANT",
                             help="their number (`pbx meeting participants`)")
        if undo is not None:
            command.add_argument(undo, action="store_false", dest="on", help="undo it")
        command.set_defaults(run=_meeting_control, action=name)
    for name, help_text, undo in (
            ("lock", "lock the meeting: nobody else may join (moderators may)", "--unlock"),
            ("record", "start recording the meeting's mix (a new WAV)", "--stop"),
            ("end", "end the meeting for everyone", None)):
        command = commands.add_parser(name, parents=common, help=help_text)
        command.add_argument("number", metavar="NUMBER")
        if undo is not None:
            command.add_argument(undo, action="store_false", dest="on", help="undo it")
        command.set_defaults(run=_meeting_control, action=name)



def _meeting_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        room = opened.service(MeetingService).add_room(
            args.number, pin=args.pin, moderator_pin=args.moderator_pin,
            max_participants=args.max_participants, pin_tries=args.pin_tries,
            wait_for_moderator=args.wait_for_moderator, end_with_moderator=args.end_with_moderator,
            mute_on_entry=args.mute_on_entry, entry_tones=args.entry_tones, record=args.record,
            name=args.name, tenant_domain=args.tenant, replace=args.replace,
        )
    print(f"added meeting room {room.number} of {room.tenant_domain}: {describe(room)}")
    return EXIT_OK


def describe(room: MeetingRoomInfo) -> str:
    """How callers get in, and what is not as by default: "PIN 1234, moderator PIN 4321, up to 50"."""
    pins = [f"{what} {pin}" for what, pin in (("PIN", room.pin), ("moderator PIN", room.moderator_pin))
            if pin is not None]
    settings = (
        ("waits for a moderator", room.wait_for_moderator),
        ("ends with the last moderator", room.end_with_moderator),
        ("mutes on entry", room.mute_on_entry),
        ("no entry tones", not room.entry_tones),
        ("recorded", room.record),
    )
    return ", ".join([*(pins or ["no PIN"]), f"up to {room.max_participants}",
                      *(what for what, on in settings if on)])


def _show_rooms(rooms: Sequence[MeetingRoomInfo]) -> None:
    print_table(
        ("NUMBER", "NAME", "PIN", "MODERATOR PIN", "MAX", "TRIES", "WAIT", "END", "MUTED", "TONES", "RECORD"),
        [(room.number, room.name or "", room.pin or "", room.moderator_pin or "", str(room.max_participants),
          str(room.pin_tries), yes_no(room.wait_for_moderator), yes_no(room.end_with_moderator),
          yes_no(room.mute_on_entry), yes_no(room.entry_tones), yes_no(room.record)) for room in rooms],
    )


_ACTIONS = {"mute": ("mute", "muted"), "kick": ("kick", None), "lock": ("lock", "locked"),
            "record": ("recording", "recording"), "end": ("end", None)}
"""A command's last path segment and the flag its body sets."""


def _meeting_control(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        room = opened.service(MeetingService).room(args.number, args.tenant)
        servers = ServerService(sessions=opened.sessions).list_servers(role=ServerRole.MEETING)
        assert opened.config.auth is not None
        secret = opened.config.auth.secret.get_secret_value()
    server, meeting = _find_meeting(servers, secret, room)
    if args.action is not None:
        resource, flag = _ACTIONS[args.action]
        path = ["meetings", room.tenant_domain, room.number]
        if args.action in ("mute", "kick"):
            path += ["participants", args.participant]
        path.append(resource)
        body = {flag: args.on} if flag is not None else {}
        assert server.http_port is not None
        try:
            reply = control_request(server.host, server.http_port, secret, "POST", path, body)
        except ControlUnreachable as exc:
            raise CommandError(f"meeting server {server.name}: {exc}") from None
        if reply.status != 200:
            raise CommandError(f"meeting server {server.name}: {reply.body.get('error', reply.status)}")
        meeting = reply.body["meeting"]
    if getattr(args, "json", False):
        json.dump({"server": server.name, **meeting}, sys.stdout, indent=2)
        print()
    else:
        _print_meeting(server, meeting)
    return EXIT_OK


def _find_meeting(servers: list[ServerEntry], secret: str, room: MeetingRoomInfo) -> tuple[ServerEntry, Any]:
    """The meeting server holding the room's meeting, and the meeting; CommandError when none has it."""
    try:
        server, reply = locate(servers, secret, ["meetings", room.tenant_domain, room.number])
    except NotOnAnyServer as exc:
        found = f"no meeting in progress in room {room.number} of {room.tenant_domain}"
        raise CommandError(found + (f" (not asked: {exc})" if str(exc) else "")) from None
    return server, reply.body["meeting"]


def _print_meeting(server: ServerEntry, meeting: dict[str, Any]) -> None:
    states = [f"started {meeting['started_at'][:19].replace('T', ' ')} UTC"]
    if meeting["locked"]:
        states.append("locked")
    if meeting["recording"]:
        states.append(f"recording to {meeting['recording']}")
    print(f"room {meeting['room']} of {meeting['domain']} on meeting server {server.name}: "
          f"{', '.join(states)}")
    people = meeting["participants"]
    if not people:
        print("nobody in it")
        return
    print_table(("#", "CALLER", "STATE", "MODERATOR", "MUTED", "TALKING"),
                [(str(p["number"]), p["caller"], p["state"], yes_no(p["moderator"]),
                  "" if p["muted"] is None else yes_no(p["muted"]), yes_no(p["talking"])) for p in people])
