"""The IVR menu engine: what one caller's keypresses in an auto-attendant lead to, sans-IO.

Rules (the behaviour `IvrMenu` in cluster/models/ivr.py describes):
- A menu's prompts play; a digit pressed during them stops them (barge-in) and is input.
  Nothing pressed within `timeout` seconds of their end is a timeout.
- Input ends with `#`, when nothing longer could still match (no longer option key and,
  with dial-by-extension, no longer extension starts with it), or `inter_digit_timeout`
  seconds after the last digit. It then names an option key, or (dial-by-extension) an
  extension of the tenant; anything else is invalid.
- An invalid input, a timeout or a failed transfer counts a retry and plays the invalid (or
  timeout) prompt and the greeting again; past `retries` the call goes to the final destination.
- `ivr:N` switches to menu N here (its own retries, schedule and greeting), `repeat` plays
  the greeting again without counting a retry, `dial` collects an extension (first digit
  within `timeout`), the others transfer the caller or hang up.
- On entering a menu whose schedule is closed, the call goes to its closed destination.
- A failure of the closed destination (unknown menu, failed transfer) goes to the final one;
  a failure of the final destination hangs up. More than `MAX_JUMPS_WITHOUT_INPUT` menu
  switches, repeats and dials in a row without a digit hang up (menus sending a silent caller
  round in circles).

The runner reads no clock: every method takes `now` (monotonic seconds), `start` also the
wall-clock time the schedules need; the frame plays, stops and transfers what
`take_actions()` asks and calls `handle_timer(now)` at `next_timer()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from pbx_services.cluster.destinations import Destination, DestinationKind
from pbx_services.cluster.schedules import BusinessHours

logger = logging.getLogger(__name__)

DIGITS = frozenset("0123456789*#")
END_OF_INPUT = "#"
MAX_JUMPS_WITHOUT_INPUT = 10
"""Menu switches, repeats and dials in a row with no digit pressed; one more hangs up."""


@dataclass(frozen=True)
class Menu:
    """An auto-attendant as the engine runs it (built from `IvrMenu` by `ivr.catalog`)."""

    number: str
    """What callers dial to reach it, also what `ivr:N` names."""
    greeting: str
    """The name of the prompt that presents the options."""
    invalid_prompt: str | None
    """Played before the greeting again after invalid input or a failed transfer; None for none."""
    timeout_prompt: str | None
    """Played before the greeting again when nothing was pressed; None for none."""
    timeout: float
    """Seconds for the first digit, counted from the end of the greeting."""
    inter_digit_timeout: float
    """Seconds after a digit before the input counts as complete."""
    retries: int
    """How many times the greeting is played again after a failure before `final_destination`."""
    final_destination: Destination
    dial_by_extension: bool
    """Input that is no option but an extension of the tenant is transferred there."""
    options: Mapping[str, Destination]
    """Destinations by the digits that choose them ("1", "12", "*")."""
    hours: BusinessHours | None
    """When the menu is open; None for always."""
    closed_destination: Destination | None
    """Where callers go outside `hours`; None for `final_destination`."""


@dataclass(frozen=True, slots=True)
class Play:
    prompts: tuple[str, ...]
    """Prompt names to play in order, replacing whatever plays."""


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Stop what plays (the caller pressed a digit)."""


@dataclass(frozen=True, slots=True)
class Transfer:
    number: str
    """The number of the caller's tenant to send the call to (the frame sends a SIP REFER)."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call."""


Action = Play | StopPlayback | Transfer | Hangup


class Phase(Enum):
    IDLE = "not started"
    PROMPTING = "prompts of the menu playing"
    WAITING = "prompts played, waiting for the first digit"
    INPUT = "digits pressed, waiting for more"
    DIAL_WAITING = "dial: waiting for the first digit of an extension"
    DIAL_INPUT = "dial: digits of an extension pressed, waiting for more"
    TRANSFERRING = "transfer asked, its outcome not known"
    ENDED = "hung up"


IDLE, PROMPTING, WAITING, INPUT, DIAL_WAITING, DIAL_INPUT, TRANSFERRING, ENDED = Phase

_LEAVING_INPUT = frozenset({PROMPTING, DIAL_WAITING, TRANSFERRING, ENDED})
"""Where a decision leads: a menu's prompts, dial, a transfer or the end."""

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    IDLE: _LEAVING_INPUT,
    PROMPTING: _LEAVING_INPUT | {WAITING, INPUT},
    WAITING: _LEAVING_INPUT | {INPUT},
    INPUT: _LEAVING_INPUT | {INPUT},
    DIAL_WAITING: _LEAVING_INPUT | {DIAL_INPUT},
    DIAL_INPUT: _LEAVING_INPUT | {DIAL_INPUT},
    TRANSFERRING: _LEAVING_INPUT,
    ENDED: frozenset(),
}
"""phase -> the phases it may move to; Ended is final."""


class Role(Enum):
    """Why the call is sent to a destination, which decides what its failure leads to."""

    CHOSEN = "chosen by the caller"
    CLOSED = "closed destination"
    FINAL = "final destination"


class MenuRunner:
    """One caller in the menus of a tenant, from the first greeting to a transfer or hang-up."""

    def __init__(self, *, menu: Menu, menus: Callable[[str], Menu | None],
                 extension_exists: Callable[[str], bool], extension_prefix: Callable[[str], bool]) -> None:
        """`menus` finds another menu of the tenant by number; `extension_exists(number)` says
        whether a user has that extension, `extension_prefix(digits)` whether a longer one
        starts with those digits."""
        self.menu = menu
        self._menus = menus
        self._extension_exists = extension_exists
        self._extension_prefix = extension_prefix
        self._phase = IDLE
        self._actions: list[Action] = []
        self._deadline: float | None = None
        self._buffer = ""
        self._failures = 0
        self._jumps = 0
        self._transfer_role = Role.CHOSEN
        self._started_at = 0.0
        self._started_wall: datetime | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def finished(self) -> bool:
        """The caller was transferred or hung up; digits are ignored (until `transfer_failed`)."""
        return self._phase in (TRANSFERRING, ENDED)

    def start(self, now: float, wall: datetime) -> None:
        """Enter the first menu; `wall` is the aware wall-clock time of `now`, for its schedule."""
        if self._phase is not IDLE:
            raise RuntimeError(f"menu {self.menu.number}: started twice")
        self._started_at, self._started_wall = now, wall
        logger.debug("menu %s: start", self.menu.number)
        self._enter_menu(now)

    def digit(self, digit: str, now: float) -> None:
        """The caller pressed `digit` ('0'-'9', '*', '#')."""
        if digit not in DIGITS:
            logger.debug("menu %s: ignoring key %r", self.menu.number, digit)
            return
        if self._phase in (IDLE, TRANSFERRING, ENDED):
            logger.debug("menu %s: ignoring %r while %s", self.menu.number, digit, self._phase.value)
            return
        self._jumps = 0
        if self._phase is PROMPTING:
            logger.debug("menu %s: %r barges in", self.menu.number, digit)
            self._actions.append(StopPlayback())
            self._move(INPUT)
        elif self._phase is WAITING:
            self._move(INPUT)
        elif self._phase is DIAL_WAITING:
            self._move(DIAL_INPUT)
        if digit == END_OF_INPUT:
            if not self._buffer and digit in self._options:
                self._buffer = digit
            logger.debug("menu %s: # ends input %r", self.menu.number, self._buffer)
            self._evaluate(now)
            return
        self._buffer += digit
        if self._could_grow(self._buffer):
            self._deadline = now + self.menu.inter_digit_timeout
            logger.debug("menu %s: input %r could grow, waiting %.1f s", self.menu.number, self._buffer,
                         self.menu.inter_digit_timeout)
        else:
            logger.debug("menu %s: input %r complete", self.menu.number, self._buffer)
            self._evaluate(now)

    def playback_finished(self, now: float) -> None:
        """Everything the last `Play` asked has been played."""
        if self._phase is not PROMPTING:
            logger.debug("menu %s: playback end ignored while %s", self.menu.number, self._phase.value)
            return
        self._move(WAITING)
        self._deadline = now + self.menu.timeout
        logger.debug("menu %s: prompts played, waiting %.1f s for a digit", self.menu.number,
                     self.menu.timeout)

    def transfer_failed(self, status: int, now: float) -> None:
        """The target of the last `Transfer` did not take the call (`status`: its SIP status)."""
        if self._phase is not TRANSFERRING:
            logger.debug("menu %s: transfer failure %d ignored while %s", self.menu.number, status,
                         self._phase.value)
            return
        logger.debug("menu %s: transfer to the %s failed (%d)", self.menu.number,
                     self._transfer_role.value, status)
        if self._transfer_role is Role.FINAL:
            self._hang_up("the final destination failed")
        elif self._transfer_role is Role.CLOSED:
            self._go(self.menu.final_destination, Role.FINAL, now)
        else:
            self._fail(self.menu.invalid_prompt, now)

    def next_timer(self) -> float | None:
        """When `handle_timer` is due (monotonic seconds); None when no timer runs."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._phase in (WAITING, DIAL_WAITING):
            logger.debug("menu %s: nothing pressed", self.menu.number)
            self._fail(self.menu.timeout_prompt, now)
        elif self._phase in (INPUT, DIAL_INPUT):
            logger.debug("menu %s: pause after %r ends input", self.menu.number, self._buffer)
            self._evaluate(now)

    def take_actions(self) -> list[Action]:
        """What the frame must do, in order; each action is handed out once."""
        actions, self._actions = self._actions, []
        return actions

    @property
    def _dialling(self) -> bool:
        return self._phase in (DIAL_WAITING, DIAL_INPUT)

    @property
    def _options(self) -> Mapping[str, Destination]:
        return {} if self._dialling else self.menu.options

    @property
    def _by_extension(self) -> bool:
        return self._dialling or self.menu.dial_by_extension

    def _could_grow(self, digits: str) -> bool:
        if any(key != digits and key.startswith(digits) for key in self._options):
            return True
        return self._by_extension and self._extension_prefix(digits)

    def _evaluate(self, now: float) -> None:
        digits, self._buffer = self._buffer, ""
        self._deadline = None
        destination = self._options.get(digits)
        if destination is not None:
            logger.debug("menu %s: option %r -> %s", self.menu.number, digits, destination)
            self._go(destination, Role.CHOSEN, now)
        elif digits and self._by_extension and self._extension_exists(digits):
            logger.debug("menu %s: extension %r", self.menu.number, digits)
            self._go(Destination(DestinationKind.EXTENSION, digits), Role.CHOSEN, now)
        else:
            logger.debug("menu %s: invalid input %r", self.menu.number, digits)
            self._fail(self.menu.invalid_prompt, now)

    def _fail(self, prompt: str | None, now: float) -> None:
        self._failures += 1
        if self._failures > self.menu.retries:
            logger.debug("menu %s: %d failures, past %d retries", self.menu.number, self._failures,
                         self.menu.retries)
            self._go(self.menu.final_destination, Role.FINAL, now)
            return
        logger.debug("menu %s: retry %d of %d", self.menu.number, self._failures, self.menu.retries)
        self._play(tuple(name for name in (prompt, self.menu.greeting) if name is not None))

    def _go(self, destination: Destination, role: Role, now: float) -> None:
        logger.debug("menu %s: to %s (%s)", self.menu.number, destination, role.value)
        self._buffer = ""
        self._deadline = None
        kind = destination.kind
        if destination.transfers:
            assert destination.number is not None
            self._transfer_role = role
            self._actions.append(Transfer(destination.number))
            self._move(TRANSFERRING)
        elif kind is DestinationKind.HANGUP:
            self._hang_up("hangup destination")
        elif self._jump():
            if kind is DestinationKind.DIAL:
                self._move(DIAL_WAITING)
                self._deadline = now + self.menu.timeout
            elif kind is DestinationKind.REPEAT:
                self._play((self.menu.greeting,))
            else:
                assert kind is DestinationKind.IVR and destination.number is not None
                self._switch(destination.number, role, now)

    def _jump(self) -> bool:
        """Count a menu switch, repeat or dial; False (and hung up) past the loop guard."""
        self._jumps += 1
        if self._jumps > MAX_JUMPS_WITHOUT_INPUT:
            self._hang_up(f"{self._jumps} menu switches, repeats and dials without input")
            return False
        return True

    def _switch(self, number: str, role: Role, now: float) -> None:
        menu = self._menus(number)
        if menu is None:
            logger.debug("menu %s: no menu %s", self.menu.number, number)
            if role is Role.FINAL:
                self._hang_up(f"final destination ivr:{number} is no menu")
            else:
                self._go(self.menu.final_destination, Role.FINAL, now)
            return
        logger.debug("menu %s: switching to menu %s", self.menu.number, menu.number)
        self.menu = menu
        self._failures = 0
        self._enter_menu(now)

    def _enter_menu(self, now: float) -> None:
        hours = self.menu.hours
        if hours is not None and not hours.is_open(self._wall(now)):
            closed = self.menu.closed_destination
            logger.debug("menu %s: closed, to %s", self.menu.number, closed or "the final destination")
            if closed is None:
                self._go(self.menu.final_destination, Role.FINAL, now)
            else:
                self._go(closed, Role.CLOSED, now)
            return
        self._play((self.menu.greeting,))

    def _wall(self, now: float) -> datetime:
        assert self._started_wall is not None
        return self._started_wall + timedelta(seconds=now - self._started_at)

    def _play(self, prompts: tuple[str, ...]) -> None:
        self._deadline = None
        self._actions.append(Play(prompts))
        self._move(PROMPTING)

    def _hang_up(self, reason: str) -> None:
        logger.debug("menu %s: hang up: %s", self.menu.number, reason)
        self._deadline = None
        self._actions.append(Hangup())
        self._move(ENDED)

    def _move(self, phase: Phase) -> None:
        if phase not in TRANSITIONS[self._phase]:
            raise RuntimeError(f"menu {self.menu.number}: no move from {self._phase.name} to {phase.name}")
        self._phase = phase
