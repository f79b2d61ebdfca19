"""The answered calls' records in the state store (`DialogStore`): how a call outlives the
process that holds it.

Every answered call is written to the store whenever what routes its requests changes
(`mark_changed`, then `save_changed` after each event), written again before its record
lapses (`refresh_records`), and deleted when it ends. A worker that restarts takes back its
calls (`restore_calls`); a worker that gets a request of a call it does not hold (its owner
died, or another Call Manager holds the VIP now) takes the call over (`adopt`), and the
holder of the VIP takes over the calls of a Call Manager that is gone (`take_over_from`).

A record names its owner ("<node>/<worker>"): a write goes only over a record that still
names us, unless we claim the call (a new one, or one taken over); a call whose record
names another holder is let go here. A call taken over is rebuilt Connected, with its
media anchor, and its media server is told who holds it now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set
from dataclasses import asdict, fields
from typing import Any

from ..cluster.events import HangupBy
from ..cluster.state.dialogs import CallRecord, DialogStore
from ..cluster.state.errors import StateStoreUnavailable
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from .anchoring import MediaAnchoring, describe_anchor
from .call import CONNECTED, Call, Leg
from .permissions import Caller

log = logging.getLogger(__name__)

CALL_RECORD_TTL = 3600.0
"""Seconds a call record lives in the state store unless written again."""
CALL_RECORD_REFRESH = 1200.0
"""Seconds after which the record of a call that did not change is written again."""


class CallRecords:
    """The state-store side of the B2BUA's calls (sans-IO: the store's calls are the caller's)."""

    def __init__(self, *, store: DialogStore, owner: str, wall_offset: float, calls: Set[Call],
                 anchoring: MediaAnchoring, default_realm: Callable[[], str],
                 hold: Callable[[Call], None], forget: Callable[[Call], None]) -> None:
        """`calls` are the calls held here; `hold` makes a rebuilt call one of them (its dialogs
        found), `forget` drops one whose record names another holder now."""
        self._store = store
        self._owner = owner
        """The name our call records give their owner: "<node>/<worker>"."""
        self._wall_offset = wall_offset
        self._calls = calls
        self._anchoring = anchoring
        self._default_realm = default_realm
        self._hold = hold
        self._forget = forget
        self._changed: set[Call] = set()
        self._taken_over: list[tuple[str, str]] = []
        """(previous owner, record key) of the calls taken over since `take_takeovers`."""

    def mark_changed(self, call: Call) -> None:
        """What routes the call's requests changed: its record is written after this event."""
        self._changed.add(call)

    def save_changed(self, now: float) -> None:
        """Write the records of the answered calls that changed; the service calls it after each
        event. While the store is away, they stay to write (and the call goes on)."""
        if not self._changed:
            return
        changed, self._changed = self._changed, set()
        for call in changed:
            if call.answered:
                self._save_record(call, now)

    def refresh_records(self, now: float) -> None:
        """Write again the records that are due, so that a long call's record does not lapse."""
        for call in list(self._calls):
            if call.answered and (call.saved_at is None or now - call.saved_at >= CALL_RECORD_REFRESH):
                self._save_record(call, now)

    def restore_calls(self, now: float) -> int:
        """Take back the calls the store says are ours (this worker restarted); how many."""
        restored = 0
        held = {call.record_key for call in self._calls}
        for record in self._store.owned_by(self._owner):
            if record.key not in held and self._rebuild(record, now) is not None:
                restored += 1
        if restored:
            log.info("took back %d calls from the state store", restored)
        return restored

    def adopt(self, call_id: str, local_tag: str, now: float) -> bool:
        """Take over the call one of whose legs is the dialog (Call-ID, our tag) from the store,
        if it has it; whether it did. Raises StateStoreUnavailable when the store is away."""
        record = self._store.find(call_id, local_tag)
        if record is None or any(c.record_key == record.key for c in self._calls):
            return False
        call = self._rebuild(record, now)
        if call is None:
            return False
        log.info("took over call %s from %s", call.call_id, record.owner)
        self._save_record(call, now, claim=True)
        if record.owner != self._owner:
            self._taken_over.append((record.owner, record.key))
        return True

    def take_over_from(self, owner: str, now: float) -> int:
        """Take over every call the store says `owner` holds (a Call Manager that is gone); how many.

        Raises StateStoreUnavailable when the store is away."""
        taken = 0
        held = {call.record_key for call in self._calls}
        for record in self._store.owned_by(owner):
            if record.key in held:
                continue
            call = self._rebuild(record, now)
            if call is None:
                continue
            self._save_record(call, now, claim=True)
            taken += 1
        if taken:
            log.info("took over %d calls of %s, which is gone", taken, owner)
        return taken

    def take_takeovers(self) -> list[tuple[str, str]]:
        """(previous owner, call key) of each call taken over: that owner, if alive, must forget it."""
        taken, self._taken_over = self._taken_over, []
        return taken

    def let_go(self, call: Call) -> None:
        """The call is no longer held here: nothing more to write for it."""
        self._changed.discard(call)

    def ended(self, call: Call) -> None:
        """The call ended: its record, if it has one, is deleted."""
        self._changed.discard(call)
        if call.saved_at is None:
            return
        a, b = call.a, call.b
        dialogs = tuple((leg.dialog.call_id, leg.dialog.local_tag) for leg in (a, b)
                        if leg is not None and leg.dialog is not None)
        try:
            self._store.delete(CallRecord(key=call.record_key, owner=self._owner, dialogs=dialogs, data={}))
        except StateStoreUnavailable:
            log.warning("call %s ended while the state store was away: its record lapses by itself",
                        call.call_id)

    def _save_record(self, call: Call, now: float, *, claim: bool = False) -> None:
        """Write the call's record: over any other (`claim`, a new call or one taken over), else
        only over one that still names us; a call whose record names another holder is let go."""
        a, b = call.a, call.b
        if a.dialog is None or b is None or b.dialog is None:
            return
        dialogs = ((a.dialog.call_id, a.dialog.local_tag), (b.dialog.call_id, b.dialog.local_tag))
        record = CallRecord(key=call.record_key, owner=self._owner, dialogs=dialogs,
                            data=self._describe(call))
        expected = self._owner if call.recorded and not claim else None
        try:
            written = self._store.save(record, ttl=CALL_RECORD_TTL, if_owner=expected)
        except StateStoreUnavailable:
            self._changed.add(call)
            call.saved_at = None
            return
        if not written:
            log.warning("call %s: its record names another holder or is gone", call.call_id)
            self._forget(call)
            return
        call.recorded = True
        call.saved_at = now

    def _describe(self, call: Call) -> dict[str, Any]:
        """What `_rebuild` needs to go on with the call in another process (wall-clock times)."""
        media = call.media
        return {
            "call_id": call.call_id, "a_tag": call.a_tag, "b_call_id": call.b_call_id, "b_tag": call.b_tag,
            "caller": call.caller, "callee": call.callee, "dialed": call.dialed, "tenant_id": call.tenant_id,
            "realm": call.realm, "limits": None if call.limits is None else asdict(call.limits),
            "forwards": call.forwards,
            "started_at": call.started_at + self._wall_offset,
            "answered_at": call.answered_at + self._wall_offset if call.answered_at is not None else None,
            "legs": [_describe_leg(leg) for leg in (call.a, call.b) if leg is not None],
            "media": None if media is None else describe_anchor(media),
        }

    def _rebuild(self, record: CallRecord, now: float) -> Call | None:
        """The answered call a record describes, held here from now on; None if it is not one."""
        data = record.data
        try:
            a, b = (_rebuild_leg(leg) for leg in data["legs"])
            answered_at = data["answered_at"]
            call = Call(a=a, call_id=str(data["call_id"]), a_tx=None, a_invite=None,
                        a_tag=str(data["a_tag"]), b_call_id=str(data["b_call_id"]), b_tag=str(data["b_tag"]),
                        caller=str(data["caller"]), callee=str(data["callee"]), tenant_id=data["tenant_id"],
                        started_at=float(data["started_at"]) - self._wall_offset, b=b, phase=CONNECTED,
                        answered_at=None if answered_at is None else float(answered_at) - self._wall_offset,
                        realm=str(data.get("realm") or self._default_realm()), dialed=data.get("dialed"),
                        limits=_rebuild_limits(data.get("limits")), forwards=int(data.get("forwards") or 0))
            media = data["media"]
            if media is not None:
                call.media = self._anchoring.rebuild_anchor(call, media)
        except (KeyError, TypeError, ValueError, RemoteProtocolError) as exc:
            log.error("state store: skipped call record %s: %s", record.key, exc)
            return None
        self._hold(call)
        call.saved_at = now
        call.recorded = record.owner == self._owner
        self._anchoring.claim(call, now)
        return call


def _describe_leg(leg: Leg) -> dict[str, Any]:
    assert leg.dialog is not None
    return {"side": leg.side.value, "peer": list(leg.peer), "transport": leg.transport,
            "dialog": leg.dialog.to_json(), "codecs": list(leg.codecs), "trunk": leg.trunk}


def _rebuild_leg(data: dict[str, Any]) -> Leg:
    return Leg(HangupBy(data["side"]), (str(data["peer"][0]), int(data["peer"][1])), str(data["transport"]),
               dialog=Dialog.from_json(data["dialog"]), codecs=tuple(data.get("codecs", ())),
               trunk=data.get("trunk"))


def _rebuild_limits(data: dict[str, Any] | None) -> Caller | None:
    """The calling user's permission and limits from a record: None in one saved before records
    had them; a field a newer version added is left out (a rolling upgrade)."""
    if data is None:
        return None
    known = {field.name for field in fields(Caller)}
    return Caller(**{name: value for name, value in data.items() if name in known})
