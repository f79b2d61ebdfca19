"""`pbx queue add|list|del`: the call queues; `pbx queue --config FILE` runs the queue server;
`pbx agent login|logout|pause|unpause|skills`: the queues' agents.

A member is `EXT[:PENALTY]`: `--member` for a static agent (always logged in), `--dynamic-member`
for one who logs in and out (`pbx agent login`). Logins, pauses and skills are kept in the
database, so that no restart of any server loses them.
"""

import argparse
import json
import sys
from collections.abc import Sequence

from pbx_services.cli.common import (
    EXIT_OK,
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
from pbx_services.cluster.control_client import NotOnAnyServer, locate
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.queues import QueueInfo, QueueService, format_skills
from pbx_services.cluster.servers import ServerService


def add_commands(subparsers: Subparsers) -> None:
    common = [data_dir_option(), tenant_option()]
    commands = add_application_server_commands(subparsers, role="queue", server="queue server",
                                               things="call queues", what_they_are="callers wait with music "
                                               "for the next agent")

    add = commands.add_parser(
        "add", parents=common, help="add a call queue",
        description="Add the queue reached by dialling NUMBER. Its strategy picks whom to ring among the "
        "available agents of the lowest penalty: ring-all, round-robin, round-robin-ordered, longest-idle, "
        "fewest-calls, least-talk-time, random, weighted-random, linear (Asterisk's and FreeSWITCH's names "
        "are understood too).")
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--strategy", default="ring-all", help="how agents are picked (default ring-all)")
    add.add_argument("--member", action="append", default=[], metavar="EXT[:PENALTY]", type=_member,
                     help="a static agent, always logged in; repeat for each (penalty 0-99, default 0)")
    add.add_argument("--dynamic-member", action="append", default=[], metavar="EXT[:PENALTY]", type=_member,
                     help="an agent who logs in and out (pbx agent login, or a feature code)")
    add.add_argument("--skills", default="", metavar="SKILL[:LEVEL],...",
                     help="what the queue's calls need of an agent, e.g. fr:3,billing (level 1-10, "
                     "default 1)")
    add.add_argument("--max-wait", type=int, default=0, metavar="S",
                     help="seconds a caller waits at most before the overflow (0: no limit)")
    add.add_argument("--max-length", type=int, default=0, metavar="N",
                     help="callers waiting at most; the next goes to the overflow (0: no limit)")
    add.add_argument("--overflow", metavar="DEST",
                     help="where callers go past the limits or when nobody can answer: an extension, "
                     "queue:N, ivr:N, meeting:N (default: an announcement and a hang-up)")
    add.add_argument("--join-empty", action="store_true",
                     help="callers may wait while no agent is logged in (default: they go to the overflow)")
    add.add_argument("--no-leave-empty", action="store_false", dest="leave_empty",
                     help="waiting callers stay when the last agent logs out")
    add.add_argument("--wrap-up", type=int, default=10, metavar="S", help="seconds after a call before the "
                     "agent's next (0-3600, default 10)")
    add.add_argument("--ring-timeout", type=int, default=15, metavar="S",
                     help="seconds an agent rings before the next is tried (5-300, default 15)")
    add.add_argument("--service-level", type=int, default=20, metavar="S",
                     help="answered within S seconds counts towards the service level (default 20)")
    add.add_argument("--position-interval", type=int, default=30, metavar="S",
                     help="seconds between announcements of the caller's position and wait (0: none)")
    add.add_argument("--max-misses", type=int, default=3, metavar="N",
                     help="rings in a row an agent may miss before being paused (0: never; default 3)")
    add.add_argument("--callback", action="store_true",
                     help="callers may press 1 to be called back when their turn comes, keeping their place")
    add.add_argument("--music", metavar="PROMPT", help="a prompt played in a loop while waiting "
                     "(default: the built-in music)")
    add.add_argument("--name", metavar="TEXT", help="what the queue is for")
    add.add_argument("--replace", action="store_true", help="replace the queue of that number")
    add.set_defaults(run=_queue_add)

    list_command(commands, common, QueueService, QueueService.list_queues,
                 help="list the call queues and their members", none="no queues", show=_show_queues)
    delete_command(commands, common, QueueService, QueueService.delete_queue, help="delete a call queue",
                   what="queue")

    status = commands.add_parser(
        "status", parents=common, help="who waits in a queue now, and its numbers",
        description="The callers waiting in queue NUMBER (how long, whom they ring) and its numbers since "
        "its queue server started: offered, answered, abandoned, overflowed, service level, average wait.")
    status.add_argument("number", metavar="NUMBER")
    status.add_argument("--json", action="store_true", help="the queue as a JSON object")
    status.set_defaults(run=_queue_status)

    agent = subparsers.add_parser("agent", help="log queue agents in and out, pause them, give them skills")
    agents = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    for name, help_text in (("login", "log a dynamic agent in to its queues (or one)"),
                            ("logout", "log a dynamic agent out of its queues (or one)"),
                            ("pause", "pause an agent: no queue calls until unpaused"),
                            ("unpause", "let a paused agent take queue calls again")):
        command = agents.add_parser(name, parents=common, help=help_text)
        command.add_argument("extension", metavar="EXT")
        command.add_argument("--queue", metavar="NUMBER", help="only this queue (default: all its queues)")
        if name == "pause":
            command.add_argument("--reason", metavar="TEXT", help="why (a break, training...)")
        command.set_defaults(run=_agent_state, action=name)
    skills = agents.add_parser("skills", parents=common, help="set an agent's skills")
    skills.add_argument("extension", metavar="EXT")
    skills.add_argument("skills", metavar="SKILL[:LEVEL],...", help="all its skills, e.g. fr:5,billing:2 "
                        "('' for none)")
    skills.set_defaults(run=_agent_skills)


def _member(text: str) -> tuple[str, int]:
    extension, colon, penalty = text.partition(":")
    if not colon:
        return extension, 0
    try:
        return extension, int(penalty)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the penalty after ':' must be a number") from None



def _queue_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        queue = opened.service(QueueService).add_queue(
            args.number, strategy=args.strategy, members=args.member, dynamic_members=args.dynamic_member,
            skills=args.skills, max_wait=args.max_wait, max_length=args.max_length, overflow=args.overflow,
            join_empty=args.join_empty, leave_empty=args.leave_empty, wrap_up=args.wrap_up,
            ring_timeout=args.ring_timeout, service_level=args.service_level,
            position_interval=args.position_interval, max_misses=args.max_misses, callback=args.callback,
            music_prompt=args.music, name=args.name, tenant_domain=args.tenant, replace=args.replace)
    print(f"added queue {queue.number} of {queue.tenant_domain}: {queue.strategy}, "
          f"{len(queue.members)} member{'s' if len(queue.members) != 1 else ''}"
          + (f", overflow to {queue.overflow}" if queue.overflow else ""))
    return EXIT_OK


def _members(queue: QueueInfo) -> str:
    return " ".join(f"{m.extension}{f':{m.penalty}' if m.penalty else ''}{'*' if m.dynamic else ''}"
                    for m in queue.members)


def _show_queues(queues: Sequence[QueueInfo]) -> None:
    print_table(("NUMBER", "NAME", "STRATEGY", "MEMBERS", "SKILLS", "MAX WAIT", "OVERFLOW", "WRAP-UP",
                 "CALLBACK"),
                [(q.number, q.name or "", q.strategy, _members(q), format_skills(q.skills),
                  str(q.max_wait or "-"), q.overflow or "-", str(q.wrap_up), yes_no(q.callback))
                 for q in queues])
    print("(* a dynamic member, logged in and out; :N its penalty)")


def _agent_state(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        service = opened.service(QueueService)
        if args.action in ("login", "logout"):
            queues = service.log_in(args.extension, queue=args.queue, logged_in=args.action == "login",
                                    tenant_domain=args.tenant)
            done = "logged in to" if args.action == "login" else "logged out of"
        else:
            queues = service.pause(args.extension, queue=args.queue, paused=args.action == "pause",
                                   reason=getattr(args, "reason", None), tenant_domain=args.tenant)
            done = "paused in" if args.action == "pause" else "unpaused in"
    print(f"{args.extension} {done} queue{'s' if len(queues) > 1 else ''} {', '.join(queues)}")
    return EXIT_OK


def _agent_skills(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        skills = opened.service(QueueService).set_skills(args.extension, args.skills,
                                                         tenant_domain=args.tenant)
    print(f"{args.extension} has " + (f"skills {format_skills(skills)}" if skills else "no skills"))
    return EXIT_OK


def _queue_status(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        queue = opened.service(QueueService).queue(args.number, args.tenant)
        servers = ServerService(sessions=opened.sessions).list_servers(role=ServerRole.QUEUE)
        assert opened.config.auth is not None
        secret = opened.config.auth.secret.get_secret_value()
    try:
        server, reply = locate(servers, secret, ["queues", queue.tenant_domain, queue.number])
    except NotOnAnyServer as exc:
        print(f"queue {queue.number} of {queue.tenant_domain}: nobody waiting, no queue server has had a "
              f"caller of it since it started" + (f" (not asked: {exc})" if str(exc) else ""))
        return EXIT_OK
    live = reply.body["queue"]
    if args.json:
        json.dump({"server": server.name, **live}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    level = live["service_level"]
    print(f"queue {queue.number} of {queue.tenant_domain} on queue server {server.name}: "
          f"offered {live['offered']}, answered {live['answered']}, abandoned {live['abandoned']}, "
          f"overflowed {live['overflowed']}, "
          f"service level {'-' if level is None else f'{level:.0%}'}")
    if live["waiting"]:
        print_table(("CALLER", "WAITED", "STATE", "RINGING"),
                    [(w["caller"], f"{w['waited']:.0f} s", w["state"], " ".join(w["ringing"]) or "-")
                     for w in live["waiting"]])
    else:
        print("nobody waiting")
    return EXIT_OK
