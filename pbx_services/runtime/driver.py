"""Drives a sans-IO core on the running asyncio loop: the time in, its outputs out, its timer armed.

A core takes `now` as an argument and says when it next needs to run (`next_timer()`);
this is the only place that reads the loop's clock for it and arms that timer. After
every call into the core, `after_core_ran()` sends what the core produced (the `flush`
callback of its owner) and re-arms the timer if the core's next deadline moved earlier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class SansIoCore(Protocol):
    def next_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class CoreDriver:
    def __init__(self, *, core: SansIoCore, flush: Callable[[], None]) -> None:
        self._core = core
        self._flush = flush
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def now(self) -> float:
        return self._loop.time()

    def after_core_ran(self) -> None:
        self._flush()
        deadline = self._core.next_timer()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._core.handle_timer(self._loop.time())
        self.after_core_ran()
