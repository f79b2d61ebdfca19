"""The IVR on the application-server frame: each answered call runs the menus of its number.

The frame gives the call's events (answered, digits, prompt played, transfer failed, ended);
the call's `MenuRunner` decides, and its actions are carried out here: prompts looked up in
the catalogue and played, the caller sent on by REFER, or hung up. The runner's timer (the
caller's time to press, the pause after a digit) is one timer of the frame's per call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from ..appserver.core import AppCall
from ..runtime.timers import Timer
from .catalog import MenuCatalog
from .menu import Hangup, MenuRunner, Play, StopPlayback, Transfer

log = logging.getLogger(__name__)
MAX_ACTION_ROUNDS = 20
"""Rounds of actions in one event (a Play of prompts that all vanished finishes at once)."""


@dataclass(eq=False)
class _IvrCall:
    runner: MenuRunner
    timer: Timer | None = None


class IvrApplication:
    def __init__(self, *, catalog: MenuCatalog, wall_offset: float) -> None:
        self._catalog = catalog
        self._wall_offset = wall_offset
        self._now = 0.0
        self.calls_started = 0
        self.unknown_numbers = 0

    # -- the frame's events -----------------------------------------------------------------

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        self._now = now
        if self._catalog.menu(domain, number, now) is None:
            self.unknown_numbers += 1
            return 404, "No Such IVR Menu"
        return None

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return []

    def call_started(self, call: AppCall, now: float) -> None:
        self._now = now
        domain = call.domain
        menu = self._catalog.menu(domain, call.number, now)
        if menu is None:
            log.warning("call %s for %s@%s: no such IVR menu; hanging up", call.call_id, call.number, domain)
            self.unknown_numbers += 1
            call.hang_up(now)
            return
        self.calls_started += 1
        runner = MenuRunner(
            menu=menu, menus=lambda number: self._catalog.menu(domain, number, self._now),
            extension_exists=lambda number: self._catalog.extension_exists(domain, number, self._now),
            extension_prefix=lambda digits: self._catalog.extension_prefix(domain, digits, self._now))
        call.app_data = _IvrCall(runner)
        runner.start(now, datetime.fromtimestamp(now + self._wall_offset, UTC))
        self._carry_out(call, now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        state = self._state(call, now)
        if state is None:
            return
        for digit in digits:
            state.runner.digit(digit, now)
        self._carry_out(call, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        state = self._state(call, now)
        if state is not None:
            state.runner.playback_finished(now)
            self._carry_out(call, now)

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        state = self._state(call, now)
        if state is not None:
            state.runner.transfer_failed(status, now)
            self._carry_out(call, now)

    def call_ended(self, call: AppCall, now: float) -> None:
        state = call.app_data
        if isinstance(state, _IvrCall) and state.timer is not None:
            state.timer.cancel()

    # -- carrying out what the runner decided ------------------------------------------------------

    def _state(self, call: AppCall, now: float) -> _IvrCall | None:
        self._now = now
        state = call.app_data
        return state if isinstance(state, _IvrCall) else None

    def _carry_out(self, call: AppCall, now: float) -> None:
        state = call.app_data
        assert isinstance(state, _IvrCall)
        runner = state.runner
        for _ in range(MAX_ACTION_ROUNDS):
            actions = runner.take_actions()
            if not actions:
                break
            for action in actions:
                if isinstance(action, Play):
                    prompts = self._prompts(call, action.prompts, now)
                    if prompts:
                        call.play(prompts, now)
                    else:  # nothing left to play: it is played
                        call.stop_playback()
                        runner.playback_finished(now)
                elif isinstance(action, StopPlayback):
                    call.stop_playback()
                elif isinstance(action, Transfer):
                    call.transfer(action.number, now)
                elif isinstance(action, Hangup):
                    call.hang_up(now)
        self._arm(call, state, now)

    def _prompts(self, call: AppCall, names: tuple[str, ...], now: float) -> list[npt.NDArray[np.int16]]:
        found = []
        for name in names:
            samples = self._catalog.prompts.prompt(call.domain, name, now)
            if samples is None:
                log.warning("menu of %s@%s: prompt %s is gone; skipped", call.number, call.domain, name)
                continue
            found.append(samples)
        return found

    def _arm(self, call: AppCall, state: _IvrCall, now: float) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        deadline = state.runner.next_timer()
        if deadline is None or not call.active:
            return

        def fire(t: float) -> None:
            state.timer = None
            self._now = t
            state.runner.handle_timer(t)
            self._carry_out(call, t)

        state.timer = call.schedule(deadline, fire)
