"""`pbx event publish-server-state|tail`: the cluster's event bus (a Redis stream, see
`cluster/redis_bus.py`) from the command line, on the Redis of a daemon's `state.url`.

keepalived's notify script publishes the Call Manager's VRRP changes with
`publish-server-state`; operators and the lab tests watch the bus with `tail`, which prints
one JSON object a line: {"id": ENTRY-ID, "type": CLASS, "data": {...}}.
"""

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis

from pbx_services.cli.common import EXIT_OK, CommandError, Subparsers, load_daemon_config
from pbx_services.cluster.events import ServerState, ServerStateChanged
from pbx_services.cluster.redis_bus import DEFAULT_STREAM, RedisStreamBus, encode_event, read_events
from pbx_services.cluster.state.redis import redis_client

TAIL_BLOCK_MS = 1000
"""How long one read of `tail` waits for new events before it asks again."""


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "event", help="publish and follow events of the cluster's bus (Redis, the config's state.url)")
    commands = parser.add_subparsers(dest="event_command", required=True, metavar="COMMAND")

    publish = commands.add_parser(
        "publish-server-state", help="publish that a server came up, went down or changed its VRRP state",
        description="Publish a ServerStateChanged event (keepalived's notify script runs this).")
    publish.add_argument("--server", required=True, metavar="NAME", help="the server's host name")
    publish.add_argument("--role", required=True, metavar="ROLE", help="what it is: callmanager, media, ...")
    publish.add_argument("--state", required=True, choices=[state.value for state in ServerState])
    publish.add_argument("--reason", default="", metavar="TEXT", help="why, in words")
    _config_option(publish)
    publish.set_defaults(run=_publish_server_state)

    tail = commands.add_parser(
        "tail", help="print the bus's events as JSON lines",
        description="Print the events published on the bus, one JSON object a line, as they come.")
    tail.add_argument("--from", dest="from_id", default="$", metavar="ID",
                      help="print the events after this entry id ('0': the whole stream; default: new ones)")
    tail.add_argument("--once", action="store_true",
                      help="stop at the end of the stream instead of following it")
    _config_option(tail)
    tail.set_defaults(run=_tail)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="a daemon's YAML config whose state.url is the bus's Redis")


@contextmanager
def _bus_client(config_path: Path, *, wait: float = 0.0) -> Iterator[tuple[redis.Redis, str]]:
    """A Redis client for the config's state.url and its description; its timeout is the
    config's state.timeout plus `wait` (a blocking read's)."""
    config = load_daemon_config(config_path, needs_auth=False)
    if config.state.url is None:
        raise CommandError(f"{config_path}: no state.url, so no event bus")
    try:
        client, description = redis_client(config.state.url, timeout=config.state.timeout + wait)
    except ValueError as exc:
        raise CommandError(f"{config_path}: state.url: {exc}") from None
    try:
        yield client, description
    except redis.RedisError as exc:
        raise CommandError(f"Redis at {description}: {exc}") from None
    finally:
        client.close()


def _publish_server_state(args: argparse.Namespace) -> int:
    event = ServerStateChanged(server=args.server, role=args.role, state=ServerState(args.state),
                               reason=args.reason, time=datetime.now(UTC))
    with _bus_client(args.config) as (client, _):
        entry_id = RedisStreamBus(client).publish(event)
    print(f"published {event.role} {event.server} {event.state} as {DEFAULT_STREAM} {entry_id}")
    return EXIT_OK


def _tail(args: argparse.Namespace) -> int:
    block_ms = None if args.once else TAIL_BLOCK_MS
    with _bus_client(args.config, wait=TAIL_BLOCK_MS / 1000) as (client, _):
        try:
            for entry_id, event in read_events(client, DEFAULT_STREAM, args.from_id, block_ms):
                fields = encode_event(event)
                line = {"id": entry_id, "type": fields["type"], "data": json.loads(fields["data"])}
                print(json.dumps(line), flush=True)
        except KeyboardInterrupt:
            pass  # the way to stop following
    return EXIT_OK
