"""Which Call Manager holds the calls: the one holding the SIP address (the VIP).

All three Call Managers run all the time against the same state store, but only the one
keepalived gave the VIP receives SIP. Each worker looks every second whether its host holds
the address SIP is served on, and:
- while it does, marks itself alive in the store, and takes over the calls of every worker
  of another node that is not alive (a Call Manager that died, or that lost the VIP and let
  its calls go), so that its media pool knows where every call's media is and re-homes them
  if a media server dies; on becoming the holder it first takes back its own calls (a
  restarted worker);
- when it stops holding it, lets every call go (no BYE, no CDR, no record change) and says
  so in the store, so that the new holder takes them over at once.
Calls of the sibling workers on the same node are theirs to take back (`workers.py`).

Sans-IO: `tick(holds_address, now)`; the controller finds out whether the address is here.
"""

from __future__ import annotations

import logging

from ..cluster.state.dialogs import DialogStore
from .b2bua import B2bua
from .workers import WorkerPlace

log = logging.getLogger(__name__)

HOLDER_TTL = 3.0
"""Seconds a worker's "alive" mark lasts; renewed every second while it holds the address."""


class CallHolding:
    def __init__(self, *, b2bua: B2bua, store: DialogStore, place: WorkerPlace, wall_offset: float) -> None:
        self._b2bua = b2bua
        self._store = store
        self._place = place
        self._wall_offset = wall_offset
        self.holder: bool | None = None
        """Whether this worker's node holds the SIP address; None until the first tick."""

    def tick(self, holds_address: bool, now: float) -> None:
        """Once a second. Raises StateStoreUnavailable when the store is away (the next tick
        tries again)."""
        wall = now + self._wall_offset
        owner = self._place.owner
        if not holds_address:
            was_holder, self.holder = self.holder, False
            if was_holder is None:
                log.info("this Call Manager does not hold the SIP address: standing by")
            elif was_holder:
                let_go = self._b2bua.let_go_all()
                log.warning("this Call Manager no longer holds the SIP address: %d calls left to the "
                            "one that does", let_go)
                self._store.mark_gone(owner)
            return
        if not self.holder:
            self._b2bua.records.restore_calls(now)
            log.info("this Call Manager holds the SIP address: it serves the calls")
            self.holder = True
        self._store.mark_alive(owner, ttl=HOLDER_TTL, now=wall)
        others = [o for o in self._store.owners() if self._place.adopts(o)]
        for gone in sorted(set(others) - self._store.alive(others, wall)):
            self._b2bua.records.take_over_from(gone, now)
