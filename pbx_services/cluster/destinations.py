"""Where a call can be sent: the destinations IVR options, queue overflows (and later routes) name.

    201            an extension (or any number of the tenant's dial plan)
    queue:700      a call queue
    meeting:900    a meeting room
    ivr:801        another IVR menu
    dial           the caller types an extension, ended by # or a pause
    repeat         the menu again
    hangup         a clean hang-up

`parse_destination` checks the form only; whether the number exists is the business of
the service that saves it, with `numbering.check_destination`, which names a missing one.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH, InvalidValue

DESTINATION_MAX_LENGTH = 80
_NUMBER = re.compile(rf"[0-9A-Za-z*#+._-]{{1,{EXTENSION_MAX_LENGTH}}}")


class DestinationKind(enum.Enum):
    EXTENSION = "extension"
    QUEUE = "queue"
    MEETING = "meeting"
    IVR = "ivr"
    DIAL = "dial"
    REPEAT = "repeat"
    HANGUP = "hangup"


_PREFIXED = {"queue": DestinationKind.QUEUE, "meeting": DestinationKind.MEETING, "ivr": DestinationKind.IVR}
_BARE = {"dial": DestinationKind.DIAL, "repeat": DestinationKind.REPEAT, "hangup": DestinationKind.HANGUP}


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    number: str | None = None
    """The extension, queue, room or menu number; None for dial, repeat and hangup."""

    def __str__(self) -> str:
        if self.kind is DestinationKind.EXTENSION:
            return str(self.number)
        if self.number is None:
            return self.kind.value
        return f"{self.kind.value}:{self.number}"

    @property
    def transfers(self) -> bool:
        """The call leaves the IVR for another number of the dial plan (by SIP REFER)."""
        return self.kind in (DestinationKind.EXTENSION, DestinationKind.QUEUE, DestinationKind.MEETING)


def parse_destination(text: str) -> Destination:
    """The destination `text` names; InvalidValue saying what is wrong with it otherwise."""
    value = text.strip()
    if value.lower() in _BARE:
        return Destination(_BARE[value.lower()])
    prefix, colon, number = value.partition(":")
    if colon:
        kind = _PREFIXED.get(prefix.lower())
        if kind is None:
            raise InvalidValue(f"destination {text[:90]!r}: unknown kind {prefix[:20]!r}; one of an "
                               "extension number, queue:N, meeting:N, ivr:N, dial, repeat, hangup")
        if not _NUMBER.fullmatch(number):
            raise InvalidValue(f"destination {text[:90]!r}: {number[:40]!r} is not a number")
        return Destination(kind, number)
    if not _NUMBER.fullmatch(value):
        raise InvalidValue(f"destination {text[:90]!r}: not an extension number, queue:N, meeting:N, "
                           "ivr:N, dial, repeat or hangup")
    return Destination(DestinationKind.EXTENSION, value)


def parse_destination_for(role: str, text: str, *, repeat_allowed: bool = True) -> Destination:
    """`parse_destination` of what `role` ("option 1", "overflow") names; InvalidValue naming it."""
    if len(text) > DESTINATION_MAX_LENGTH:
        raise InvalidValue(f"{role}: destination is longer than {DESTINATION_MAX_LENGTH} characters")
    try:
        destination = parse_destination(text)
    except InvalidValue as exc:
        raise InvalidValue(f"{role}: {exc}") from None
    if destination.kind is DestinationKind.REPEAT and not repeat_allowed:
        raise InvalidValue(f"{role}: 'repeat' would never let the call leave the menu")
    return destination
