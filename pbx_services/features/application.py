"""Forwarding and do-not-disturb from the phone, on the application-server frame of the IVR servers.

The Call Manager sends a tenant's feature codes here as their service numbers, the default
codes (`cluster.feature_codes`), whatever the tenant dials: `*72NUMBER` forwards the caller's
calls always to NUMBER, `*72` alone asks for the number (keyed in, ended by # or a pause of
`DIGIT_TIMEOUT` seconds), `*73` turns forwarding always off, `*78` turns do-not-disturb on and
`*79` off. The caller is the user the Call Manager authenticated (the From user). Each change
goes to the system of record (`cluster.forwarding`, which checks the number as `pbx user
forward` does; the Call Managers read it within 10 seconds), then the caller hears what was
done, or why nothing was, and is hung up.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.exc import SQLAlchemyError

from ..appserver.core import AppCall
from ..appserver.sounds import Announcements, tone_sequence
from ..cluster.dao import NotFound
from ..cluster.feature_codes import DEFAULT_SET, Feature
from ..cluster.forwarding import ForwardingService, ForwardKind
from ..cluster.validation import InvalidValue
from ..runtime.timers import Timer

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
ANSWERED_HERE = frozenset({Feature.FORWARD_ON, Feature.FORWARD_OFF, Feature.DND_ON, Feature.DND_OFF})
DIGIT_TIMEOUT = 5.0
"""Seconds after the last digit (or the question) before the number asked for is taken as it is."""
MAX_DIGITS = 32
CONFIRMATION = tone_sequence([880.0, 1320.0])
"""Heard before the sentence: done."""


class Phase(enum.Enum):
    ASKING = "asking"
    """`*72` alone: the number to forward to is keyed in."""
    CLOSING = "closing"
    """Saying what was done; hung up when it has been said."""


@dataclass(eq=False)
class _FeatureCall:
    phase: Phase
    digits: str = ""
    timer: Timer | None = None


def feature_of(number: str) -> Feature | None:
    """The feature this application answers for the service number `number`, if any."""
    match = DEFAULT_SET.match(number)
    return match.feature if match is not None and match.feature in ANSWERED_HERE else None


def is_feature_number(number: str) -> bool:
    return feature_of(number) is not None


def spell(number: str) -> str:
    return " ".join(number)


class FeatureCodeApplication:
    def __init__(self, *, forwarding: ForwardingService, announcements: Announcements,
                 counters: dict[str, int] | None = None) -> None:
        self._forwarding = forwarding
        self._say = announcements.say
        self.counters = counters if counters is not None else {}
        for name in ("feature_code_calls", "feature_code_changes", "feature_code_refusals"):
            self.counters.setdefault(name, 0)

    # -- the frame's events -----------------------------------------------------------------

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        return None if is_feature_number(number) else (404, "Not A Feature Code")

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return []

    def call_started(self, call: AppCall, now: float) -> None:
        self.counters["feature_code_calls"] += 1
        match = DEFAULT_SET.match(call.number)
        assert match is not None
        state = call.app_data = _FeatureCall(Phase.CLOSING)
        if match.feature is Feature.FORWARD_ON and not match.argument:
            state.phase = Phase.ASKING
            call.play([self._say("Please enter the number to forward your calls to, then press pound.")], now)
            self._arm(call, state, now)
            return
        self._carry_out(call, state, match.feature, match.argument, now)

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        state = self._state(call)
        if state is None or state.phase is not Phase.ASKING:
            return
        for digit in digits:
            if digit == "#":
                self._number_entered(call, state, now)
                return
            if len(state.digits) < MAX_DIGITS:
                call.stop_playback()
                state.digits += digit
        self._arm(call, state, now)

    def playback_finished(self, call: AppCall, now: float) -> None:
        state = self._state(call)
        if state is not None and state.phase is Phase.CLOSING:
            call.hang_up(now)

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        """Feature codes transfer nothing."""

    def call_ended(self, call: AppCall, now: float) -> None:
        state = self._state(call)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    # -- the features -----------------------------------------------------------------------------

    def _number_entered(self, call: AppCall, state: _FeatureCall, now: float) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.phase = Phase.CLOSING
        self._carry_out(call, state, Feature.FORWARD_ON, state.digits, now)

    def _carry_out(self, call: AppCall, state: _FeatureCall, feature: Feature, number: str,
                   now: float) -> None:
        """Change the caller's setting, then say what was done (or why not) and hang up."""
        state.phase = Phase.CLOSING
        user, domain = call.caller, call.domain
        try:
            if feature is Feature.FORWARD_ON:
                if not number:
                    raise InvalidValue("no number was entered")
                self._forwarding.forward(user, ForwardKind.ALWAYS, number, tenant_domain=domain)
                said = f"Your calls are forwarded to {spell(number)}."
            elif feature is Feature.FORWARD_OFF:
                self._forwarding.forward(user, ForwardKind.ALWAYS, None, tenant_domain=domain)
                said = "Call forwarding is off."
            else:
                self._forwarding.set_dnd(user, feature is Feature.DND_ON, tenant_domain=domain)
                said = f"Do not disturb is {'on' if feature is Feature.DND_ON else 'off'}."
        except (InvalidValue, NotFound) as exc:
            self.counters["feature_code_refusals"] += 1
            log.info("feature %s from %s@%s refused: %s", feature.value, user, domain, exc)
            reason = f"{spell(number)} cannot take your calls" if number else "No number was entered"
            if isinstance(exc, NotFound):
                reason = "This phone has no user"
            call.play([self._say(f"{reason}. Nothing was changed. Goodbye.")], now)
            return
        except SQLAlchemyError:
            log.exception("feature %s from %s@%s: the database failed", feature.value, user, domain)
            call.play([self._say("Sorry, that cannot be done now. Goodbye.")], now)
            return
        self.counters["feature_code_changes"] += 1
        log.info("feature %s from %s@%s%s: done", feature.value, user, domain,
                 f" ({number})" if number else "")
        call.play([CONFIRMATION, self._say(said)], now)

    def _arm(self, call: AppCall, state: _FeatureCall, now: float) -> None:
        if state.timer is not None:
            state.timer.cancel()

        def fire(t: float) -> None:
            state.timer = None
            if state.phase is Phase.ASKING:
                self._number_entered(call, state, t)

        state.timer = call.schedule(now + DIGIT_TIMEOUT, fire)

    @staticmethod
    def _state(call: AppCall) -> _FeatureCall | None:
        state = call.app_data
        return state if isinstance(state, _FeatureCall) else None
