"""The dialog event package's view of a user (RFC 4235), for BLF: which calls a user's line
has and in what state, as the `application/dialog-info+xml` body of a NOTIFY (sans-IO).

A phone subscribed to a colleague's dialogs lights its key from these states: no dialog (or
`terminated`) is idle, `early` on a recipient's dialog is ringing (a press picks it up on
phones that can), `confirmed` is busy. Each call the user takes part in is one dialog, named
by the caller's Call-ID (stable for the whole call, whatever the Call Manager does with its
legs), seen from the user: `initiator` when the user called, `recipient` when it is called.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ..cluster.state.lines import InMemoryLines, LineStore
from .call import ENDED, ROUTING, Call

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/dialog-info+xml"


@dataclass(frozen=True, slots=True)
class DialogView:
    id: str
    direction: str
    """`initiator` (the user called) or `recipient` (the user is called)."""
    state: str
    """`early` (ringing, or calling), `confirmed` (talking) or `terminated`."""
    remote: str
    """The other party's extension or number."""


def dialogs_of(calls: Iterable[Call], realm: str, extension: str) -> list[DialogView]:
    """The dialogs of user `extension` of the tenant `realm` among `calls`, by id."""
    views = []
    for call in calls:
        if call.realm != realm or extension not in (call.caller, call.callee):
            continue
        state = "terminated" if call.phase is ENDED else "early" if call.phase is ROUTING else "confirmed"
        recipient = call.callee == extension
        views.append(DialogView(id=call.call_id, direction="recipient" if recipient else "initiator",
                                state=state, remote=call.caller if recipient else call.callee))
    return sorted(views, key=lambda view: view.id)


def dialog_info(entity: str, version: int, dialogs: Iterable[DialogView], realm: str) -> bytes:
    """The full-state dialog-info document of `entity` (`sip:EXT@realm`) at `version`."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full" '
             f'entity={quoteattr(entity)}>']
    for view in dialogs:
        lines += [f"<dialog id={quoteattr(view.id)} direction={quoteattr(view.direction)}>",
                  f"<state>{view.state}</state>",
                  f"<remote><identity>{escape(f'sip:{view.remote}@{realm}')}</identity></remote>",
                  "</dialog>"]
    lines.append("</dialog-info>")
    return ("\r\n".join(lines) + "\r\n").encode()


LINE_TTL = 3.0
"""Seconds a worker's published lines stay live: three missed publications."""
FULL_PUBLICATION_INTERVAL = 30.0
"""Seconds between two publications of all of a worker's lines; in between, only changes."""


def _line_key(realm: str, extension: str) -> str:
    return f"{realm}/{extension}"


def _encode(views: Iterable[DialogView]) -> str:
    return json.dumps([[view.id, view.direction, view.state, view.remote] for view in views])


def _decode(text: str) -> list[DialogView]:
    try:
        return [DialogView(id=str(i), direction=str(d), state=str(s), remote=str(r))
                for i, d, s, r in json.loads(text)]
    except (ValueError, TypeError):
        log.warning("a published line that does not parse is passed over: %.80r", text)
        return []


class DialogPackage:
    """The dialog event package (RFC 4235) for `subscriptions.Subscriptions`: any user of a
    tenant may watch a colleague's line (BLF).

    A watcher's SUBSCRIBE reaches one worker, the colleague's calls may be held by others:
    every worker publishes the lines of its calls to the state store once a second
    (`publish`), and the watcher's worker reads the watched lines from there when polled, once
    a second too, so only a line whose dialogs changed is NOTIFYed, within about 2 s."""

    name = "dialog"
    content_type = CONTENT_TYPE

    def __init__(self, *, calls: Callable[[], Iterable[Call]],
                 extension_exists: Callable[[str, str], bool], lines: LineStore | None = None,
                 owner: str = "local") -> None:
        self._calls = calls
        self._extension_exists = extension_exists
        self._lines: LineStore = lines or InMemoryLines()
        self._owner = owner
        self._published_lines: dict[str, str] | None = None
        """What the store has of this worker's lines, as last published; None: not known."""
        self._full_due = 0.0

    def refusal(self, subscriber: str, realm: str, resource: str) -> tuple[int, str] | None:
        return None if self._extension_exists(realm, resource) else (404, "Not Found")

    def state(self, realm: str, resource: str, now: float) -> tuple[DialogView, ...]:
        """On a new subscription: this worker's dialogs of the line as they are, and the others'."""
        here = dialogs_of(self._calls(), realm, resource)
        return _merged(here, self._published({(realm, resource)}, now).get((realm, resource), []))

    def body(self, realm: str, resource: str, state: tuple[DialogView, ...], version: int) -> bytes:
        return dialog_info(f"sip:{resource}@{realm}", version, state, realm)

    def publish(self, now: float) -> None:
        """Once a second: the lines of this worker's calls, for the watchers of every worker;
        all of them every FULL_PUBLICATION_INTERVAL (and when the store lost them), else only
        those that changed or ended. Raises StateStoreUnavailable when the store is away."""
        lines: dict[tuple[str, str], list[Call]] = {}
        for call in self._calls():
            for extension in {call.caller, call.callee}:
                lines.setdefault((call.realm, extension), []).append(call)
        current = {_line_key(realm, extension): _encode(dialogs_of(calls, realm, extension))
                   for (realm, extension), calls in lines.items()}
        last, self._published_lines = self._published_lines, None  # unknown if the store fails
        if last is not None and now < self._full_due:
            changed = {key: text for key, text in current.items() if last.get(key) != text}
            ended = [key for key in last if key not in current]
            if self._lines.update(self._owner, changed, ended, LINE_TTL, now):
                self._published_lines = current
                return
        self._lines.publish(self._owner, current, LINE_TTL, now)
        self._published_lines = current
        self._full_due = now + FULL_PUBLICATION_INTERVAL

    def poll(self, watched: set[tuple[str, str]],
             now: float) -> list[tuple[str, str, tuple[DialogView, ...]]]:
        published = self._published(watched, now)
        return [(realm, resource, _merged([], published.get((realm, resource), [])))
                for realm, resource in watched]

    def _published(self, lines: set[tuple[str, str]], now: float) -> dict[tuple[str, str], list[DialogView]]:
        keys = {_line_key(realm, resource): (realm, resource) for realm, resource in lines}
        found = self._lines.read(keys.keys(), now)
        return {keys[key]: [view for text in texts for view in _decode(text)] for key, texts in found.items()}


def _merged(here: list[DialogView], published: list[DialogView]) -> tuple[DialogView, ...]:
    """One view per dialog, this worker's own before what it (or another) published, by id."""
    views = {view.id: view for view in published}
    views.update((view.id, view) for view in here)
    return tuple(sorted(views.values(), key=lambda view: view.id))
