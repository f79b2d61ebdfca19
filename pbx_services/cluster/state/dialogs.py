"""The answered calls in progress, as far as another Call Manager process needs them.

A Call Manager worker writes a `CallRecord` when a call is answered and whenever what
routes its in-dialog requests changes (CSeqs, targets, the media anchor), and deletes it
when the call ends. A worker that restarts takes back the calls it owned (`owned_by`); a
worker that gets an in-dialog request for a call it does not hold finds it by either leg's
dialog (`find`) and takes it over. Records expire after `ttl` unless written again, so the
calls of a Call Manager that vanished for good do not pile up.
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
    def save(self, record: CallRecord, *, ttl: float) -> None:
        """Write (or overwrite) the record; it lapses after `ttl` seconds unless saved again."""
        ...

    def find(self, call_id: str, local_tag: str) -> CallRecord | None:
        """The call one of whose legs is the dialog (Call-ID, our tag), if any."""
        ...

    def owned_by(self, owner: str) -> list[CallRecord]: ...

    def delete(self, record: CallRecord) -> None: ...


class InMemoryDialogs:
    """Calls in this process: a worker that restarts is a process that restarts, so this only
    serves the one-process Call Manager, where nothing is shared and nothing survives."""

    def __init__(self) -> None:
        self._records: dict[str, CallRecord] = {}
        self._by_dialog: dict[tuple[str, str], str] = {}

    def save(self, record: CallRecord, *, ttl: float) -> None:
        self._records[record.key] = record
        for dialog in record.dialogs:
            self._by_dialog[dialog] = record.key

    def find(self, call_id: str, local_tag: str) -> CallRecord | None:
        key = self._by_dialog.get((call_id, local_tag))
        return self._records.get(key) if key is not None else None

    def owned_by(self, owner: str) -> list[CallRecord]:
        return [record for record in self._records.values() if record.owner == owner]

    def delete(self, record: CallRecord) -> None:
        self._records.pop(record.key, None)
        for dialog in record.dialogs:
            self._by_dialog.pop(dialog, None)
