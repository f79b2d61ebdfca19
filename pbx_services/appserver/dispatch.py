"""Several applications on one application server, each answering its own numbers.

The frame runs one `Application` per worker; `ByNumber` is that application when a server
runs more than one (the IVR servers run the IVR menus and voicemail): each call goes to the
first application whose predicate takes its number (the dialled number, the INVITE's To user,
which stays the call's), else to the default one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .core import AppCall, Application


class ByNumber:
    def __init__(self, *, default: Application,
                 routes: Sequence[tuple[Callable[[str], bool], Application]]) -> None:
        self._default = default
        self._routes = tuple(routes)

    def _for(self, number: str) -> Application:
        return next((application for takes, application in self._routes if takes(number)), self._default)

    @property
    def counters(self) -> dict[str, int]:
        """Every application's counters (for /metrics), which name their application."""
        merged: dict[str, int] = {}
        for application in (self._default, *(application for _, application in self._routes)):
            merged |= getattr(application, "counters", {})
        return merged

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        return self._for(number).refusal(number, domain, now)

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return self._for(call.number).answer_headers(call, now)

    def call_started(self, call: AppCall, now: float) -> None:
        self._for(call.number).call_started(call, now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        self._for(call.number).digits(call, digits, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        self._for(call.number).playback_finished(call, now)

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        self._for(call.number).transfer_failed(call, status, now)

    def call_ended(self, call: AppCall, now: float) -> None:
        self._for(call.number).call_ended(call, now)
