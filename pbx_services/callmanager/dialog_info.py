"""The dialog event package's view of a user (RFC 4235), for BLF: which calls a user's line
has and in what state, as the `application/dialog-info+xml` body of a NOTIFY (sans-IO).

A phone subscribed to a colleague's dialogs lights its key from these states: no dialog (or
`terminated`) is idle, `early` on a recipient's dialog is ringing (a press picks it up on
phones that can), `confirmed` is busy. Each call the user takes part in is one dialog, named
by the caller's Call-ID (stable for the whole call, whatever the Call Manager does with its
legs), seen from the user: `initiator` when the user called, `recipient` when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from .call import ENDED, ROUTING, Call

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


class DialogPackage:
    """The dialog event package (RFC 4235) for `subscriptions.Subscriptions`: any user of a
    tenant may watch a colleague's line (BLF). Polled once a second: one pass over the calls
    of this worker gives the state of every watched line, and only a line whose dialogs
    changed is NOTIFYed."""

    name = "dialog"
    content_type = CONTENT_TYPE

    def __init__(self, *, calls: Callable[[], Iterable[Call]],
                 extension_exists: Callable[[str, str], bool]) -> None:
        self._calls = calls
        self._extension_exists = extension_exists

    def refusal(self, subscriber: str, realm: str, resource: str) -> tuple[int, str] | None:
        return None if self._extension_exists(realm, resource) else (404, "Not Found")

    def state(self, realm: str, resource: str, now: float) -> tuple[DialogView, ...]:
        return tuple(dialogs_of(self._calls(), realm, resource))

    def body(self, realm: str, resource: str, state: tuple[DialogView, ...], version: int) -> bytes:
        return dialog_info(f"sip:{resource}@{realm}", version, state, realm)

    def poll(self, watched: set[tuple[str, str]],
             now: float) -> list[tuple[str, str, tuple[DialogView, ...]]]:
        lines: dict[tuple[str, str], list[Call]] = {line: [] for line in watched}
        for call in self._calls():
            for extension in {call.caller, call.callee}:
                found = lines.get((call.realm, extension))
                if found is not None:
                    found.append(call)
        return [(realm, resource, tuple(dialogs_of(calls, realm, resource)))
                for (realm, resource), calls in lines.items()]
