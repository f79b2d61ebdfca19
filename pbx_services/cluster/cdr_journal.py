"""A local append-only file of the CDRs not yet in the database, so a crash loses none.

The Call Manager appends a call's CDR when the call ends and `sync()`s (write + fdatasync)
before it sends the messages that end the call (the BYE's 200, the final response), so a
call whose end a phone has been told about has its CDR on disk. The writer batches the
rows into the database every second; once a batch is committed the journal is emptied.
At start-up `read()` returns what a crashed process left, to be written (those already in
the database, when the crash fell between the commit and the emptying, are recognised by
call id and times and skipped).

One JSON object per line; a torn last line (the crash came mid-write) is skipped. Not
thread-safe: one process, one journal file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Enum as EnumType
from sqlalchemy import inspect

from pbx_services.cluster.models import Cdr
from pbx_services.cluster.models.base import UtcDateTime

log = logging.getLogger(__name__)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _decoders() -> dict[str, Any]:
    """Column name -> how to turn its JSON value back into what the column takes."""
    decoders: dict[str, Any] = {}
    for column in inspect(Cdr).columns:
        if isinstance(column.type, UtcDateTime):
            decoders[column.key] = datetime.fromisoformat
        elif isinstance(column.type, EnumType) and column.type.enum_class is not None:
            decoders[column.key] = column.type.enum_class
    return decoders


class CdrJournal:
    """The journal file at `path` (its directory is created, private to the service user)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._unsynced = bytearray()
        """Rows appended and not yet written; what a failed write left half done stays here."""
        self._decoders = _decoders()
        self._absent = {column.key: None for column in inspect(Cdr).columns
                        if column.nullable and not column.primary_key}
        self.syncs = 0
        """fdatasync calls made: one per batch of CDRs, not one per CDR under load."""

    def read(self) -> list[dict[str, Any]]:
        """The rows the journal holds (left by a process that stopped before writing them);
        a column a row lacks (journaled by an older version) is NULL."""
        rows = []
        with open(self.path, "rb") as journal:
            for number, line in enumerate(journal, 1):
                try:
                    rows.append(self._absent | {key: self._decode(key, value)
                                                for key, value in json.loads(line).items()})
                except (ValueError, TypeError, KeyError) as exc:
                    # A torn last line: the process died writing it, before the call was told it ended.
                    log.warning("%s line %d is unreadable, skipped: %s", self.path, number, exc)
        return rows

    def _decode(self, key: str, value: Any) -> Any:
        decoder = self._decoders.get(key)
        return value if decoder is None or value is None else decoder(value)

    def append(self, row: Mapping[str, Any]) -> None:
        """Queue one row; on disk at the next `sync()`."""
        self._unsynced += json.dumps({key: _encode(value) for key, value in row.items()}).encode() + b"\n"

    def sync(self) -> None:
        """Write the queued rows and wait until the disk has them. Raises OSError (disk full);
        the next call goes on from where that one stopped."""
        if not self._unsynced:
            return
        while self._unsynced:
            del self._unsynced[:os.write(self._fd, self._unsynced)]
        os.fdatasync(self._fd)
        self.syncs += 1

    def clear(self) -> None:
        """Every row, synced or queued, is in the database: empty the file."""
        os.ftruncate(self._fd, 0)
        self._unsynced.clear()

    def close(self) -> None:
        os.close(self._fd)
