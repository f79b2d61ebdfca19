"""Several Call Manager workers on one SIP port: which worker a message belongs to.

Every worker binds the SIP port (SO_REUSEPORT), so the kernel spreads phones over them by
address; but a callee's answer, or a BYE from either phone, may land on a worker that did not
set the call up. Each worker marks the tags it makes (`WorkerPlace.tag()`: "<random>.w<i>"),
and that tag comes back where the call is named: as the From tag of every response to a
request we sent, and as the To tag of every request inside a dialog we are part of. A worker
that receives a message whose tag names another worker hands it over whole (`Forward`), with
where it came from; the owner handles it as if it had arrived there. When the owner is not
there (killed, restarting) the receiving worker handles it itself, taking the call over from
the state store.

An application server's INVITE outside any dialog that will be joined later with one of its
calls (a queue ringing an agent for a waiting caller) names the Call Manager's tag of that call
in our `Pbx-Join-Tag` header, and so does its CANCEL: it goes to the worker named there, so
that one worker holds both calls when the REFER with Replaces joins them.

A TCP connection is held by the worker that accepted it: a message for a phone on another
worker's connection goes to that worker as a `Forward` with `send=True`, to be written on it.
A worker that took over a call of a sibling that is back tells it to forget the call
(`Release`), so that one call is never held by two.

Sans-IO: `owner_of(message)` and the frames' `serialize`/`parse_frame`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..sip.headers import PBX_JOIN_TAG
from ..sip.message import SipMessage, SipRequest
from ..sip.transaction import make_tag

TAG_MARK = ".w"


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Who a worker is: its node (the host's name in a cluster), its index, how many there are."""

    node: str
    index: int = 0
    count: int = 1

    @property
    def owner(self) -> str:
        """What the state store's call records name as a call's owner."""
        return f"{self.node}/{self.index}"

    def tag(self) -> str:
        """A fresh From/To tag (or Call-ID part) that names this worker."""
        return f"{make_tag()}{TAG_MARK}{self.index}" if self.count > 1 else make_tag()

    def adopts(self, owner: str) -> bool:
        """Whether this worker takes over the calls of `owner` when it is gone: a worker of
        another node whose index maps to ours (a sibling on this node takes back its own)."""
        place = place_of(owner)
        return place is not None and place[0] != self.node and place[1] % self.count == self.index

    def owner_of(self, message: SipMessage) -> int | None:
        """The worker `message` belongs to, when that is another one than this; else None."""
        if self.count <= 1:
            return None
        if isinstance(message, SipRequest):
            # Outside a dialog, an application server's INVITE (and its CANCEL) may name the
            # call it will be joined with, which the worker holding that call must hold too.
            tag = message.to.tag or message.headers.get(PBX_JOIN_TAG)
        else:
            tag = message.from_.tag
        index = worker_of_tag(tag)
        if index is None or index == self.index or index >= self.count:
            return None
        return index


def worker_of_tag(tag: str | None) -> int | None:
    if not tag:
        return None
    head, mark, index = tag.rpartition(TAG_MARK)
    if not mark or not head or not index.isdigit() or len(index) > 4:
        return None
    return int(index)


def place_of(owner: str) -> tuple[str, int] | None:
    """(node, worker index) of an owner name ("<node>/<index>"), None if it is not one."""
    node, slash, index = owner.rpartition("/")
    return (node, int(index)) if slash and node and index.isdigit() else None


class ForwardError(ValueError):
    """A frame between workers that is not one (another program on our socket name, a bug)."""


@dataclass(frozen=True, slots=True)
class Forward:
    """A SIP message handed from one worker to another on the same host."""

    data: bytes
    peer: tuple[str, int]
    """Where it came from (received), or where it goes (`send`)."""
    transport: str
    from_worker: int
    send: bool = False
    """Write `data` on the TCP connection to `peer` this worker holds, rather than handle it."""

    def serialize(self) -> bytes:
        head = json.dumps([self.peer[0], self.peer[1], self.transport, self.from_worker, self.send],
                          separators=(",", ":"))
        return head.encode() + b"\n" + self.data

    @classmethod
    def parse(cls, frame: bytes) -> Forward:
        head, newline, data = frame.partition(b"\n")
        if not newline:
            raise ForwardError("forwarded frame has no header line")
        try:
            host, port, transport, from_worker, send = json.loads(head)
        except ValueError:
            raise ForwardError("forwarded frame header is not a JSON list of 5") from None
        if not (isinstance(host, str) and isinstance(port, int) and transport in ("UDP", "TCP")
                and isinstance(from_worker, int) and isinstance(send, bool)):
            raise ForwardError("forwarded frame header has a bad field")
        return cls(data=data, peer=(host, port), transport=transport, from_worker=from_worker, send=send)


RELEASE_PREFIX = b"release "


@dataclass(frozen=True, slots=True)
class Release:
    """Another worker took the call `key` over: forget it, without BYE or CDR (it goes on there)."""

    key: str

    def serialize(self) -> bytes:
        return RELEASE_PREFIX + self.key.encode()


def parse_frame(frame: bytes) -> Forward | Release:
    """A frame of the workers' channel; ForwardError if it is not one."""
    if frame.startswith(RELEASE_PREFIX):
        return Release(frame[len(RELEASE_PREFIX):].decode("utf-8", "replace"))
    return Forward.parse(frame)
