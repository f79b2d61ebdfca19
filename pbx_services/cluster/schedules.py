"""Business hours: when a tenant's schedule is open.

Hours are written as clauses separated by `;`, each a set of days and one or more time
ranges in the schedule's time zone:

    mon-fri 09:00-17:00; sat 10:00-12:00
    mon,wed 08:30-12:00 13:00-17:30
    daily 00:00-24:00
    sun-sat 22:00-06:00

Days are `mon` .. `sun`, ranges of them (`fri-mon` wraps round the week) separated by
commas, or `daily`. A time range whose end is not after its start runs past midnight and
belongs to the day it starts: `fri 22:00-06:00` is open from Friday 22:00 to Saturday 06:00.
Times are wall-clock times, so on the days the clocks change a range keeps its local hours.
A holiday closes the schedule for the whole of its local date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_services.cluster.validation import InvalidValue

MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names by `datetime.weekday()`."""
EVERY_DAY = "daily"

_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True, slots=True)
class OpeningRange:
    weekday: int
    """The day the range starts on: 0 for Monday to 6 for Sunday."""
    start: int
    """Minutes after that day's local midnight, 0 to 1439."""
    end: int
    """Minutes after that day's local midnight, after `start`; above 1440 past midnight."""

    def covers(self, weekday: int, minute: float) -> bool:
        """Open at `minute` after the local midnight of `weekday`."""
        if weekday == self.weekday:
            return self.start <= minute < self.end
        return weekday == (self.weekday + 1) % 7 and minute + MINUTES_PER_DAY < self.end


@dataclass(frozen=True, slots=True)
class Hours:
    ranges: tuple[OpeningRange, ...]
    """In the order written."""


def parse_hours(text: str) -> Hours:
    """The hours `text` describes; InvalidValue naming the bad part otherwise."""
    ranges: list[OpeningRange] = []
    for clause in text.split(";"):
        words = clause.split()
        if not words:
            continue
        if len(words) == 1:
            raise InvalidValue(f"hours {text[:90]!r}: {clause.strip()[:40]!r} has no time range "
                               "(like 'mon-fri 09:00-17:00')")
        days = _parse_days(text, words[0])
        for word in words[1:]:
            start, end = _parse_time_range(text, word)
            ranges.extend(OpeningRange(day, start, end) for day in days)
    if not ranges:
        raise InvalidValue("hours are empty; like 'mon-fri 09:00-17:00; sat 10:00-12:00'")
    return Hours(tuple(ranges))


def is_open(hours: Hours, holidays: frozenset[date], at: datetime, timezone: str) -> bool:
    """Whether `hours` in `timezone` are open at the aware datetime `at`, closed on `holidays`."""
    if at.tzinfo is None:
        raise ValueError(f"is_open needs an aware datetime, not {at!r}")
    local = at.astimezone(ZoneInfo(timezone))
    if local.date() in holidays:
        return False
    minute = local.hour * 60 + local.minute + local.second / 60
    weekday = local.weekday()
    return any(opening.covers(weekday, minute) for opening in hours.ranges)


def validate_timezone(name: str) -> str:
    """An IANA time zone name known to zoneinfo ("Europe/Paris", "UTC")."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue(f"time zone {name[:64]!r} is unknown; an IANA name like 'Europe/Paris'") from None
    return name


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """A schedule as the IVR reads it: its hours, time zone and holidays."""

    hours: Hours
    timezone: str
    holidays: frozenset[date] = frozenset()

    def is_open(self, at: datetime) -> bool:
        return is_open(self.hours, self.holidays, at, self.timezone)


def _parse_days(text: str, word: str) -> tuple[int, ...]:
    spec = word.lower()
    if spec == EVERY_DAY:
        return tuple(range(7))
    days: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.partition("-")
        start = _weekday(text, first, word)
        stop = _weekday(text, last, word) if dash else start
        span = (stop - start) % 7
        days.extend((start + offset) % 7 for offset in range(span + 1) if (start + offset) % 7 not in days)
    return tuple(days)


def _weekday(text: str, name: str, word: str) -> int:
    try:
        return WEEKDAYS.index(name)
    except ValueError:
        raise InvalidValue(f"hours {text[:90]!r}: {word[:40]!r} is not a day ({', '.join(WEEKDAYS)}, "
                           f"a range like mon-fri, or {EVERY_DAY})") from None


def _parse_time_range(text: str, word: str) -> tuple[int, int]:
    first, dash, last = word.partition("-")
    if not dash:
        raise InvalidValue(f"hours {text[:90]!r}: {word[:40]!r} is not a time range like 09:00-17:00")
    start = _minutes(text, first, word)
    end = _minutes(text, last, word)
    if start == MINUTES_PER_DAY:
        raise InvalidValue(f"hours {text[:90]!r}: {word[:40]!r} starts at 24:00; start at 00:00")
    if start == end:
        raise InvalidValue(f"hours {text[:90]!r}: {word[:40]!r} is empty")
    return start, end if end > start else end + MINUTES_PER_DAY


def _minutes(text: str, time: str, word: str) -> int:
    match = _TIME.fullmatch(time)
    if match is None:
        raise InvalidValue(f"hours {text[:90]!r}: {time[:20]!r} in {word[:40]!r} is not a time like 09:30")
    hour, minute = int(match[1]), int(match[2])
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise InvalidValue(f"hours {text[:90]!r}: {time!r} in {word[:40]!r} is not a time of day "
                           "(00:00 to 24:00)")
    return hour * 60 + minute
