"""Where a call goes when its callee's own rules send it elsewhere: users' forwarding and
do-not-disturb (`callmanager.forwarding`) and ring groups (`callmanager.ring_groups`), before
the call rings, when every device failed, and when nobody answered in time; and where a
transfer's target rings. A part of `B2bua` in a module of its own, as `CallTransfers` is: it
works on the B2BUA's calls and branches directly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..cluster.events import Disposition
from .call import ROUTING, Call
from .forwarding import MAX_FORWARDS, ForwardingTable
from .permissions import Caller
from .ring_groups import Hunt, RingGroupTable, RingStrategy
from .routing import Target, disposition_for

if TYPE_CHECKING:
    from .b2bua import B2bua

log = logging.getLogger(__name__)


class CallRedirection:
    def __init__(self, b2bua: B2bua, *, forwarding: ForwardingTable | None,
                 ring_groups: RingGroupTable | None) -> None:
        self._b = b2bua
        self._forwarding = forwarding
        self._ring_groups = ring_groups

    def ring(self, call: Call, targets: list[Target], now: float) -> None:
        """Start a branch to each target; the callee's no-answer forward, if any, starts counting."""
        for target in targets:
            self._b._start_branch(call, target, now)
        if call.hunt is not None:
            self._b._cancel_timer(call.forward_timer)
            call.forward_timer = self._b._timers.schedule(now + call.hunt.seconds,
                                                          lambda t: self._hunt_timed_out(call, t))
            return
        forwarding = self._forwarding.of(call.realm, call.callee, now) if self._forwarding else None
        if forwarding is None or not forwarding.no_answer:
            return
        destination = forwarding.no_answer

        def unanswered(t: float) -> None:
            call.forward_timer = None
            if call.phase is ROUTING:
                log.info("call %s to %s: no answer in %d s, forwarded to %s", call.call_id, call.callee,
                         forwarding.no_answer_seconds, destination)
                self._forward(call, destination, t)

        self._b._cancel_timer(call.forward_timer)
        call.forward_timer = self._b._timers.schedule(now + forwarding.no_answer_seconds, unanswered)

    def route(self, realm: str, dialed: str, now: float, *, outbound: bool, caller: Caller | None,
              forwards: int) -> tuple[str, list[Target] | tuple[int, str], int, Hunt | None]:
        """Route a call to `dialed` after the users' forward-always, do-not-disturb and
        unreachable forwarding (`callmanager.forwarding`), or to a ring group's first members
        (`callmanager.ring_groups`): the number finally rung, its targets or the refusal, the
        forwards counted so far, and the ring group's hunt."""
        while forwards <= MAX_FORWARDS:
            group = self._ring_groups.of(realm, dialed, now) if self._ring_groups else None
            if group is not None:
                hunt = Hunt(group=dialed, waiting=list(group.members), seconds=group.ring_seconds,
                            final=group.final)
                targets = self._hunt_targets(realm, hunt, now,
                                             all_at_once=group.strategy is RingStrategy.SIMULTANEOUS)
                if targets:
                    return dialed, targets, forwards, hunt
                if group.final is None:
                    log.info("ring group %s@%s: no member can ring", dialed, realm)
                    return dialed, (480, "Temporarily Unavailable"), forwards, None
                log.info("ring group %s@%s: no member can ring, to %s", dialed, realm, group.final)
                dialed, forwards = group.final, forwards + 1
                continue
            forwarding = self._forwarding.of(realm, dialed, now) if self._forwarding else None
            if forwarding is not None and (forwarding.always or forwarding.dnd):
                if not forwarding.always and not forwarding.busy:
                    log.info("call to %s@%s: do not disturb, busy", dialed, realm)
                    return dialed, (486, "Busy Here"), forwards, None
                destination = forwarding.always or forwarding.busy
                log.info("call to %s@%s forwarded to %s (%s)", dialed, realm, destination,
                         "always" if forwarding.always else "do not disturb")
                dialed, forwards = str(destination), forwards + 1
                continue
            routed = self._b.router.route(realm, dialed, now, outbound=outbound, caller=caller)
            if isinstance(routed, tuple) and routed[0] == 480 and forwarding is not None \
                    and forwarding.unreachable:
                log.info("call to %s@%s forwarded to %s (no device registered)", dialed, realm,
                         forwarding.unreachable)
                dialed, forwards = forwarding.unreachable, forwards + 1
                continue
            return dialed, routed, forwards, None
        log.warning("call to %s@%s: forwarded %d times, a loop: refused", dialed, realm, forwards)
        return dialed, (482, "Loop Detected"), forwards, None

    def transfer_targets(self, realm: str, number: str, now: float) -> list[Target] | tuple[int, str]:
        """Where a transfer to `number` rings: the number after its user's forward-always,
        do-not-disturb and unreachable forwarding, or every member of a ring group at once (a
        transfer does not hunt); or the refusal."""
        _, targets, _, hunt = self.route(realm, number, now, outbound=True, caller=None, forwards=0)
        if hunt is not None and isinstance(targets, list):
            targets = [*targets, *self._hunt_targets(realm, hunt, now, all_at_once=True)]
        return targets

    def _hunt_targets(self, realm: str, hunt: Hunt, now: float, *, all_at_once: bool) -> list[Target]:
        """The devices of the ring group's next member that can ring (of every member left,
        `all_at_once`); those rung leave `hunt.waiting`. A member on do-not-disturb or without
        a registered device is passed over."""
        targets: list[Target] = []
        while hunt.waiting and (all_at_once or not targets):
            member = hunt.waiting.pop(0)
            forwarding = self._forwarding.of(realm, member, now) if self._forwarding else None
            if forwarding is not None and forwarding.dnd:
                continue
            found = self._b.router.route(realm, member, now, outbound=False, caller=None)
            if isinstance(found, list):
                targets.extend(found)
        return targets

    def _hunt_timed_out(self, call: Call, now: float) -> None:
        self._next_in_hunt(call, now, timed_out=True)

    def _next_in_hunt(self, call: Call, now: float, *, timed_out: bool) -> bool:
        """A ring group's members rung so far did not answer in time (`timed_out`) or all refused:
        ring the next member, else go to the group's final destination; whether it did either,
        or (timed out) refused the call 480."""
        hunt = call.hunt
        if hunt is None or call.phase is not ROUTING:
            return False
        call.forward_timer = None
        for branch in call.branches:
            self._b._cancel_branch(branch, now)
        call.branches = []
        targets = self._hunt_targets(call.realm, hunt, now, all_at_once=False)
        if targets:
            log.info("call %s: ring group %s %s, ringing its next member", call.call_id, hunt.group,
                     "not answered" if timed_out else "refused")
            self.ring(call, targets, now)
            return True
        call.hunt = None
        if hunt.final is not None:
            log.info("call %s: ring group %s not answered, to %s", call.call_id, hunt.group, hunt.final)
            self._forward(call, hunt.final, now)
            return True
        if timed_out:
            self._b._stack.respond(call.invite_tx, 480, "No Answer", now=now, to_tag=call.a_tag)
            self._b._end(call, now, Disposition.NO_ANSWER, 480, None)
            return True
        return False

    def on_failure(self, call: Call, code: int, now: float) -> bool:
        """Every device of the callee failed the call with `code`: a ring group's next member, or
        the callee's busy or unreachable forward, if it has one, takes the call (True)."""
        if call.hunt is not None:
            return self._next_in_hunt(call, now, timed_out=False)
        forwarding = self._forwarding.of(call.realm, call.callee, now) if self._forwarding else None
        destination = forwarding.on_failure(code) if forwarding is not None else None
        if destination is None:
            return False
        log.info("call %s to %s: %d, forwarded to %s", call.call_id, call.callee, code, destination)
        self._forward(call, destination, now)
        return True

    def _forward(self, call: Call, destination: str, now: float) -> None:
        """Ring `destination` instead, for a call still routing whose devices were all given up
        (cancelled, or failed): they are left out of the answer the caller gets."""
        self._b._cancel_timer(call.forward_timer)
        for branch in call.branches:
            self._b._cancel_branch(branch, now)
        call.branches = []
        dialed, targets, call.forwards, hunt = self.route(
            call.realm, destination, now, outbound=True, caller=call.limits, forwards=call.forwards + 1)
        if isinstance(targets, tuple):
            code, reason = targets
            self._b._stack.respond(call.invite_tx, code, reason, now=now, to_tag=call.a_tag)
            self._b._end(call, now, disposition_for(code), code, None)
            return
        call.goes_to(dialed)
        call.hunt = hunt
        self._b.records.mark_changed(call)
        self.ring(call, targets, now)
