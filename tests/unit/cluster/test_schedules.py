from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pbx_services.cluster.schedules import (
    BusinessHours,
    Hours,
    OpeningRange,
    is_open,
    parse_hours,
    validate_timezone,
)
from pbx_services.cluster.validation import InvalidValue

PARIS = "Europe/Paris"
SPRING_FORWARD = date(2024, 3, 31)
"""A Sunday: in Paris 02:00 CET (01:00 UTC) becomes 03:00 CEST."""
FALL_BACK = date(2024, 10, 27)
"""A Sunday: in Paris 03:00 CEST (01:00 UTC) becomes 02:00 CET."""


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def open_minutes_in_paris(hours: Hours, day: date) -> int:
    """How many minutes `hours` are open in Paris on the local `day` (and its night before)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(hours=2)
    return sum(is_open(hours, frozenset(), start + timedelta(minutes=m), PARIS) for m in range(26 * 60))


def days_of(hours: Hours) -> list[int]:
    return sorted({opening.weekday for opening in hours.ranges})


def test_parse_days_and_ranges() -> None:
    hours = parse_hours("mon-fri 09:00-17:00; sat 10:00-12:00")
    assert hours.ranges == (
        *(OpeningRange(day, 9 * 60, 17 * 60) for day in range(5)),
        OpeningRange(5, 10 * 60, 12 * 60),
    )


def test_parse_several_ranges_for_a_day_list() -> None:
    hours = parse_hours("mon,wed 08:30-12:00 13:00-17:30")
    assert hours.ranges == (
        OpeningRange(0, 510, 720), OpeningRange(2, 510, 720),
        OpeningRange(0, 780, 1050), OpeningRange(2, 780, 1050),
    )


def test_parse_daily_whole_day() -> None:
    assert parse_hours("daily 00:00-24:00").ranges == tuple(OpeningRange(day, 0, 1440) for day in range(7))


def test_parse_past_midnight_range_ends_the_next_day() -> None:
    hours = parse_hours("sun-sat 22:00-06:00")
    assert days_of(hours) == list(range(7))
    assert {(opening.start, opening.end) for opening in hours.ranges} == {(22 * 60, 30 * 60)}


def test_parse_day_range_wraps_round_the_week() -> None:
    assert days_of(parse_hours("fri-mon 09:00-10:00")) == [0, 4, 5, 6]


def test_parse_is_case_and_space_tolerant() -> None:
    assert parse_hours("  MON-Fri   09:00-17:00 ;  ; sat 9:00-12:00;") == parse_hours(
        "mon-fri 09:00-17:00; sat 09:00-12:00")


@pytest.mark.parametrize(("text", "message"), [
    ("", "hours are empty; like 'mon-fri 09:00-17:00; sat 10:00-12:00'"),
    (" ; ", "hours are empty; like 'mon-fri 09:00-17:00; sat 10:00-12:00'"),
    ("mon-fri", "hours 'mon-fri': 'mon-fri' has no time range (like 'mon-fri 09:00-17:00')"),
    ("mon-fry 09:00-17:00", "hours 'mon-fry 09:00-17:00': 'mon-fry' is not a day "
                            "(mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or daily)"),
    ("monday 09:00-17:00", "hours 'monday 09:00-17:00': 'monday' is not a day "
                           "(mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or daily)"),
    ("mon 09:00", "hours 'mon 09:00': '09:00' is not a time range like 09:00-17:00"),
    ("mon 9h-17h", "hours 'mon 9h-17h': '9h' in '9h-17h' is not a time like 09:30"),
    ("mon 09:00-25:00", "hours 'mon 09:00-25:00': '25:00' in '09:00-25:00' is not a time of day "
                        "(00:00 to 24:00)"),
    ("mon 09:75-10:00", "hours 'mon 09:75-10:00': '09:75' in '09:75-10:00' is not a time of day "
                        "(00:00 to 24:00)"),
    ("mon 24:00-02:00", "hours 'mon 24:00-02:00': '24:00-02:00' starts at 24:00; start at 00:00"),
    ("mon 09:00-09:00", "hours 'mon 09:00-09:00': '09:00-09:00' is empty"),
    ("mon 09:00-12:00; sat", "hours 'mon 09:00-12:00; sat': 'sat' has no time range "
                             "(like 'mon-fri 09:00-17:00')"),
])
def test_parse_bad_text_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as error:
        parse_hours(text)
    assert str(error.value) == message


def test_open_in_local_time_end_exclusive() -> None:
    hours = parse_hours("mon-fri 09:00-17:00")
    # Monday 25 March 2024, Paris is UTC+1.
    assert not is_open(hours, frozenset(), utc(2024, 3, 25, 7, 59), PARIS)
    assert is_open(hours, frozenset(), utc(2024, 3, 25, 8, 0), PARIS)
    assert is_open(hours, frozenset(), utc(2024, 3, 25, 15, 59), PARIS)
    assert not is_open(hours, frozenset(), utc(2024, 3, 25, 16, 0), PARIS)
    # Saturday.
    assert not is_open(hours, frozenset(), utc(2024, 3, 30, 10, 0), PARIS)


def test_utc_schedule_and_other_zone_of_the_instant() -> None:
    hours = parse_hours("mon 09:00-10:00")
    at = datetime(2024, 3, 25, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert is_open(hours, frozenset(), at, "UTC")


def test_spring_forward_keeps_wall_clock_hours() -> None:
    hours = parse_hours("sun 09:00-17:00")
    # After the change Paris is UTC+2: 09:00 local is 07:00 UTC.
    assert not is_open(hours, frozenset(), utc(2024, 3, 31, 6, 59), PARIS)
    assert is_open(hours, frozenset(), utc(2024, 3, 31, 7, 0), PARIS)
    assert not is_open(hours, frozenset(), utc(2024, 3, 31, 15, 0), PARIS)


def test_spring_forward_skipped_hour_is_never_open() -> None:
    assert open_minutes_in_paris(parse_hours("sun 02:00-02:30"), SPRING_FORWARD) == 0


def test_spring_forward_range_across_the_change_is_an_hour_shorter() -> None:
    assert open_minutes_in_paris(parse_hours("sun 01:00-04:00"), SPRING_FORWARD) == 2 * 60


def test_fall_back_repeated_hour_is_open_twice() -> None:
    hours = parse_hours("sun 02:00-03:00")
    assert is_open(hours, frozenset(), utc(2024, 10, 27, 0, 30), PARIS)  # 02:30 CEST
    assert is_open(hours, frozenset(), utc(2024, 10, 27, 1, 30), PARIS)  # 02:30 CET
    assert not is_open(hours, frozenset(), utc(2024, 10, 27, 2, 0), PARIS)  # 03:00 CET
    assert open_minutes_in_paris(hours, FALL_BACK) == 2 * 60


def test_past_midnight_range_belongs_to_the_day_it_starts() -> None:
    hours = parse_hours("fri 22:00-06:00")
    # Friday 29 March 2024 .. Sunday 31 March, in UTC.
    assert not is_open(hours, frozenset(), utc(2024, 3, 29, 21, 59), "UTC")
    assert is_open(hours, frozenset(), utc(2024, 3, 29, 22, 0), "UTC")
    assert is_open(hours, frozenset(), utc(2024, 3, 30, 5, 59), "UTC")
    assert not is_open(hours, frozenset(), utc(2024, 3, 30, 6, 0), "UTC")
    assert not is_open(hours, frozenset(), utc(2024, 3, 30, 23, 0), "UTC")
    assert not is_open(hours, frozenset(), utc(2024, 3, 31, 3, 0), "UTC")
    # Friday morning is Thursday night's, which is closed.
    assert not is_open(hours, frozenset(), utc(2024, 3, 29, 3, 0), "UTC")


def test_past_midnight_range_on_sunday_runs_into_monday() -> None:
    hours = parse_hours("sun 22:00-06:00")
    assert is_open(hours, frozenset(), utc(2024, 4, 1, 3, 0), "UTC")  # Monday
    assert not is_open(hours, frozenset(), utc(2024, 4, 2, 3, 0), "UTC")


def test_past_midnight_every_day() -> None:
    hours = parse_hours("sun-sat 22:00-06:00")
    assert all(is_open(hours, frozenset(), utc(2024, 4, day, 3, 0), "UTC") for day in range(1, 8))
    assert not any(is_open(hours, frozenset(), utc(2024, 4, day, 12, 0), "UTC") for day in range(1, 8))


def test_holiday_closes_its_whole_local_date() -> None:
    hours = parse_hours("daily 00:00-24:00")
    christmas = frozenset({date(2024, 12, 25)})
    # 23:30 UTC on the 24th is 00:30 on the 25th in Paris.
    assert not is_open(hours, christmas, utc(2024, 12, 24, 23, 30), PARIS)
    assert is_open(hours, christmas, utc(2024, 12, 24, 22, 30), PARIS)
    assert not is_open(hours, christmas, utc(2024, 12, 25, 12, 0), PARIS)
    assert is_open(hours, christmas, utc(2024, 12, 25, 23, 30), PARIS)
    assert is_open(hours, christmas, utc(2024, 12, 24, 23, 30), "UTC")


def test_holiday_closes_the_night_range_running_into_it() -> None:
    hours = parse_hours("daily 22:00-06:00")
    holiday = frozenset({date(2024, 12, 25)})
    assert is_open(hours, holiday, utc(2024, 12, 24, 23, 0), "UTC")
    assert not is_open(hours, holiday, utc(2024, 12, 25, 3, 0), "UTC")
    assert not is_open(hours, holiday, utc(2024, 12, 25, 23, 0), "UTC")
    assert is_open(hours, holiday, utc(2024, 12, 26, 3, 0), "UTC")


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_open(parse_hours("daily 00:00-24:00"), frozenset(), datetime(2024, 1, 1, 12, 0), "UTC")


def test_business_hours() -> None:
    business = BusinessHours(parse_hours("mon-fri 09:00-17:00"), PARIS, frozenset({date(2024, 3, 25)}))
    assert not business.is_open(utc(2024, 3, 25, 10, 0))
    assert business.is_open(utc(2024, 3, 26, 10, 0))
    assert BusinessHours(parse_hours("mon 09:00-17:00"), "UTC").is_open(utc(2024, 3, 25, 10, 0))


def test_validate_timezone() -> None:
    assert validate_timezone(PARIS) == PARIS
    assert validate_timezone("UTC") == "UTC"
    with pytest.raises(InvalidValue, match="time zone 'Mars/Olympus' is unknown"):
        validate_timezone("Mars/Olympus")
    with pytest.raises(InvalidValue, match="is unknown"):
        validate_timezone("../etc/passwd")
    with pytest.raises(InvalidValue, match="is unknown"):
        validate_timezone("")
