"""The answered calls in progress, as far as another Call Manager process needs them.

A Call Manager worker writes a `CallRecord` when a call is answered and whenever what
routes its in-dialog requests changes (CSeqs, targets, the media anchor), and deletes it
when the call ends. A worker that restarts takes back the calls it owned (`owned_by`); a
worker that gets an in-dialog request for a call it does not hold finds it by either leg's
dialog (`find`) and takes it over. Records expire after `ttl` unless written again, so the
calls of a Call Manager that vanished for good do not pile up.

Across Call Managers: a worker that holds calls says so (`mark_alive`, renewed every second,
lapsing after a few); the worker of the Call Manager holding the SIP address takes over the
calls of every owner on another node that is not alive (`owners`, `alive`). A holder writes
its records back only while they still name it (`save(..., if_owner=...)`), so a holder that
was taken over learns it at its next write and lets the call go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CallRecord:
    key: str
    """The call's own id (the caller's Call-ID and our tag toward the caller)."""
    owner: str
    """The worker holding the call now: "<node>/<worker index>"."""
    dialogs: tuple[tuple[str, str], ...]
    """(Call-ID, our tag) of each leg's dialog: what an in-dialog request names."""
    data: dict[str, Any]
    """The B2BUA's picture of the call (JSON-like), to rebuild it from."""


class DialogStore(Protocol):
    def save(self, record: CallRecord, *, ttl: float, if_owner: str | None = None) -> bool:
        """Write (or overwrite) the record; it lapses after `ttl` seconds unless saved again.
        With `if_owner`, only if the stored record exists and names that owner; whether it wrote."""
        ...

    def find(self, call_id: str, local_tag: str) -> CallRecord | None:
        """The call one of whose legs is the dialog (Call-ID, our tag), if any."""
        ...

    def owned_by(self, owner: str) -> list[CallRecord]: ...

    def delete(self, record: CallRecord) -> None: ...

    def owners(self) -> list[str]:
        """Every owner some record names."""
        ...

    def mark_alive(self, owner: str, *, ttl: float, now: float) -> None:
        """`owner` runs and holds its calls, for `ttl` seconds from `now` (wall clock)."""
        ...

    def mark_gone(self, owner: str) -> None:
        """`owner` holds no call any more (it let them go): others may take them at once."""
        ...

    def alive(self, owners: list[str], now: float) -> set[str]:
        """Those of `owners` marked alive and not lapsed at `now` (wall clock)."""
        ...


class InMemoryDialogs:
    """Calls in this process: a worker that restarts is a process that restarts, so this only
    serves the one-process Call Manager, where nothing is shared and nothing survives."""

    def __init__(self) -> None:
        self._records: dict[str, CallRecord] = {}
        self._by_dialog: dict[tuple[str, str], str] = {}
        self._alive_until: dict[str, float] = {}

    def save(self, record: CallRecord, *, ttl: float, if_owner: str | None = None) -> bool:
        if if_owner is not None:
            stored = self._records.get(record.key)
            if stored is None or stored.owner != if_owner:
                return False
        self._records[record.key] = record
        for dialog in record.dialogs:
            self._by_dialog[dialog] = record.key
        return True

    def find(self, call_id: str, local_tag: str) -> CallRecord | None:
        key = self._by_dialog.get((call_id, local_tag))
        return self._records.get(key) if key is not None else None

    def owned_by(self, owner: str) -> list[CallRecord]:
        return [record for record in self._records.values() if record.owner == owner]

    def delete(self, record: CallRecord) -> None:
        self._records.pop(record.key, None)
        for dialog in record.dialogs:
            self._by_dialog.pop(dialog, None)

    def owners(self) -> list[str]:
        return sorted({record.owner for record in self._records.values()})

    def mark_alive(self, owner: str, *, ttl: float, now: float) -> None:
        self._alive_until[owner] = now + ttl

    def mark_gone(self, owner: str) -> None:
        self._alive_until.pop(owner, None)

    def alive(self, owners: list[str], now: float) -> set[str]:
        return {owner for owner in owners if self._alive_until.get(owner, 0.0) > now}
