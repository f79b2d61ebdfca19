import logging
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from pbx_services.cluster.destinations import Destination, parse_destination
from pbx_services.cluster.schedules import BusinessHours, parse_hours
from pbx_services.ivr.menu import (
    MAX_JUMPS_WITHOUT_INPUT,
    Hangup,
    Menu,
    MenuRunner,
    Phase,
    Play,
    StopPlayback,
    Transfer,
)

MONDAY_NOON = datetime(2024, 3, 25, 12, 0, tzinfo=UTC)
SUNDAY_NOON = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
EXTENSIONS = frozenset({"201", "2010", "300", "555"})
OFFICE_HOURS = BusinessHours(parse_hours("mon-fri 09:00-17:00"), "UTC")


def destination(text: str) -> Destination:
    return parse_destination(text)


def make_menu(number: str = "800", *, options: dict[str, str] | None = None, final: str = "hangup",
              retries: int = 2, dial_by_extension: bool = False, hours: BusinessHours | None = None,
              closed: str | None = None, invalid_prompt: str | None = "invalid",
              timeout_prompt: str | None = "timeout") -> Menu:
    return Menu(
        number=number, greeting=f"greeting-{number}", invalid_prompt=invalid_prompt,
        timeout_prompt=timeout_prompt, timeout=5.0, inter_digit_timeout=2.0, retries=retries,
        final_destination=destination(final), dial_by_extension=dial_by_extension,
        options={digits: destination(text) for digits, text in (options or {}).items()},
        hours=hours, closed_destination=None if closed is None else destination(closed),
    )


def make_runner(menu: Menu, *others: Menu) -> MenuRunner:
    by_number = {other.number: other for other in (menu, *others)}
    return MenuRunner(
        menu=menu, menus=by_number.get, extension_exists=EXTENSIONS.__contains__,
        extension_prefix=lambda digits: any(len(ext) > len(digits) and ext.startswith(digits)
                                            for ext in EXTENSIONS),
    )


def started(menu: Menu, *others: Menu, now: float = 0.0, wall: datetime = MONDAY_NOON) -> MenuRunner:
    """A runner whose greeting has been asked for (its Play taken)."""
    runner = make_runner(menu, *others)
    runner.start(now, wall)
    assert runner.take_actions() == [Play((menu.greeting,))]
    return runner


def waiting(menu: Menu, *others: Menu) -> MenuRunner:
    """A runner whose greeting ended at t=10, waiting for the first digit until t=15."""
    runner = started(menu, *others)
    runner.playback_finished(10.0)
    assert runner.next_timer() == 15.0
    return runner


def press(runner: MenuRunner, digits: str, now: float) -> None:
    for digit in digits:
        runner.digit(digit, now)


def retry_play(menu: Menu, prompt: str | None) -> Play:
    return Play(tuple(name for name in (prompt, menu.greeting) if name is not None))


MENU = make_menu(options={"1": "201", "12": "queue:700", "2": "meeting:900", "3": "hangup",
                          "4": "repeat", "5": "ivr:801", "9": "dial", "0": "ivr:999"})
SUBMENU = make_menu("801", options={"1": "300"}, final="555")


# Greeting and barge-in


def test_start_plays_the_greeting_and_waits_for_its_end() -> None:
    runner = started(MENU)
    assert runner.phase is Phase.PROMPTING
    assert runner.next_timer() is None
    assert not runner.finished
    runner.playback_finished(7.5)
    assert runner.phase is Phase.WAITING
    assert runner.next_timer() == 12.5
    assert runner.take_actions() == []


def test_start_twice_is_refused() -> None:
    runner = started(MENU)
    with pytest.raises(RuntimeError, match="started twice"):
        runner.start(1.0, MONDAY_NOON)


def test_digit_during_greeting_stops_it_and_is_input() -> None:
    runner = started(MENU)
    runner.digit("2", 3.0)
    assert runner.take_actions() == [StopPlayback(), Transfer("900")]
    assert runner.finished


def test_digit_during_retry_prompts_barges_in() -> None:
    runner = waiting(MENU)
    runner.digit("7", 11.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]
    runner.digit("3", 12.0)
    assert runner.take_actions() == [StopPlayback(), Hangup()]


def test_playback_end_ignored_unless_prompting() -> None:
    runner = waiting(MENU)
    runner.digit("1", 11.0)
    runner.playback_finished(11.5)
    assert runner.phase is Phase.INPUT
    assert runner.next_timer() == 13.0


# Input


def test_unambiguous_key_acts_at_once() -> None:
    runner = waiting(MENU)
    runner.digit("2", 11.0)
    assert runner.take_actions() == [Transfer("900")]
    assert runner.next_timer() is None


def test_key_that_starts_a_longer_key_waits_for_the_pause() -> None:
    runner = waiting(MENU)
    runner.digit("1", 11.0)
    assert runner.take_actions() == []
    assert runner.next_timer() == 13.0
    runner.handle_timer(12.9)
    assert runner.take_actions() == []
    runner.handle_timer(13.0)
    assert runner.take_actions() == [Transfer("201")]


def test_longer_key_acts_at_once() -> None:
    runner = waiting(MENU)
    press(runner, "12", 11.0)
    assert runner.take_actions() == [Transfer("700")]
    assert runner.finished


def test_inter_digit_timeout_restarts_with_each_digit() -> None:
    runner = waiting(MENU)
    runner.digit("1", 11.0)
    runner.handle_timer(12.5)
    runner.digit("2", 12.5)
    assert runner.take_actions() == [Transfer("700")]


def test_hash_ends_input_at_once() -> None:
    runner = waiting(MENU)
    press(runner, "1#", 11.0)
    assert runner.take_actions() == [Transfer("201")]


def test_hash_alone_is_invalid() -> None:
    runner = waiting(MENU)
    runner.digit("#", 11.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]


def test_hash_alone_chooses_a_hash_option() -> None:
    menu = make_menu(options={"#": "300", "1": "201"})
    runner = waiting(menu)
    runner.digit("#", 11.0)
    assert runner.take_actions() == [Transfer("300")]


def test_star_is_a_key() -> None:
    menu = make_menu(options={"*": "ivr:801", "*9": "300"})
    runner = waiting(menu, SUBMENU)
    runner.digit("*", 11.0)
    runner.handle_timer(13.0)
    assert runner.take_actions() == [Play(("greeting-801",))]


def test_no_key_starting_with_the_input_is_invalid_at_once() -> None:
    runner = waiting(MENU)
    runner.digit("1", 11.0)
    runner.digit("3", 11.5)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]
    assert runner.phase is Phase.PROMPTING
    assert runner.next_timer() is None


def test_key_outside_dtmf_is_ignored() -> None:
    runner = waiting(MENU)
    runner.digit("A", 11.0)
    assert runner.take_actions() == []
    assert runner.phase is Phase.WAITING


# Timeouts, retries and the final destination


def test_nothing_pressed_plays_timeout_prompt_and_greeting() -> None:
    runner = waiting(MENU)
    runner.handle_timer(14.9)
    assert runner.take_actions() == []
    runner.handle_timer(15.0)
    assert runner.take_actions() == [retry_play(MENU, "timeout")]
    assert runner.next_timer() is None
    runner.playback_finished(30.0)
    assert runner.next_timer() == 35.0


def test_missing_prompts_are_left_out() -> None:
    menu = make_menu(options={"1": "201"}, invalid_prompt=None, timeout_prompt=None)
    runner = waiting(menu)
    runner.handle_timer(15.0)
    assert runner.take_actions() == [Play((menu.greeting,))]
    runner.digit("7", 16.0)
    assert runner.take_actions() == [StopPlayback(), Play((menu.greeting,))]


def test_past_the_retries_the_call_goes_to_the_final_destination() -> None:
    menu = make_menu(options={"1": "201"}, retries=2, final="queue:700")
    runner = waiting(menu)
    runner.digit("7", 11.0)  # retry 1
    assert runner.take_actions() == [retry_play(menu, "invalid")]
    runner.playback_finished(20.0)
    runner.handle_timer(25.0)  # retry 2
    assert runner.take_actions() == [retry_play(menu, "timeout")]
    runner.playback_finished(30.0)
    runner.digit("8", 31.0)  # past the retries
    assert runner.take_actions() == [Transfer("700")]
    assert runner.finished


def test_no_retries_goes_to_final_destination_on_first_failure() -> None:
    runner = waiting(make_menu(retries=0, final="hangup"))
    runner.handle_timer(15.0)
    assert runner.take_actions() == [Hangup()]
    assert runner.finished
    assert runner.next_timer() is None


# Destinations


@pytest.mark.parametrize(("text", "number"), [("201", "201"), ("queue:700", "700"), ("meeting:900", "900")])
def test_transferring_destinations(text: str, number: str) -> None:
    runner = waiting(make_menu(options={"1": text}))
    runner.digit("1", 11.0)
    assert runner.take_actions() == [Transfer(number)]
    assert runner.finished
    assert runner.phase is Phase.TRANSFERRING


def test_hangup_destination() -> None:
    runner = waiting(MENU)
    runner.digit("3", 11.0)
    assert runner.take_actions() == [Hangup()]
    assert runner.phase is Phase.ENDED


def test_repeat_plays_the_greeting_without_counting_a_retry() -> None:
    menu = make_menu(options={"4": "repeat"}, retries=1, final="555")
    runner = waiting(menu)
    runner.digit("7", 11.0)  # retry 1
    assert runner.take_actions() == [retry_play(menu, "invalid")]
    runner.digit("4", 12.0)
    assert runner.take_actions() == [StopPlayback(), Play((menu.greeting,))]
    runner.digit("4", 13.0)
    assert runner.take_actions() == [StopPlayback(), Play((menu.greeting,))]
    runner.digit("7", 14.0)  # past the retries
    assert runner.take_actions() == [StopPlayback(), Transfer("555")]


def test_digits_after_finished_are_ignored() -> None:
    runner = waiting(MENU)
    runner.digit("2", 11.0)
    runner.take_actions()
    press(runner, "123#", 12.0)
    runner.handle_timer(100.0)
    assert runner.take_actions() == []
    runner.playback_finished(101.0)
    assert runner.take_actions() == []


def test_digits_before_start_are_ignored() -> None:
    runner = make_runner(MENU)
    runner.digit("2", 0.0)
    assert runner.take_actions() == []
    assert runner.phase is Phase.IDLE


# ivr:N


def test_ivr_switches_menu_with_fresh_retries() -> None:
    menu = make_menu(options={"5": "ivr:801"}, retries=1)
    runner = waiting(menu, SUBMENU)
    runner.digit("7", 11.0)  # retry 1 of the first menu
    runner.take_actions()
    runner.digit("5", 12.0)
    assert runner.take_actions() == [StopPlayback(), Play(("greeting-801",))]
    assert runner.menu is SUBMENU
    runner.playback_finished(20.0)
    runner.digit("7", 21.0)  # retry 1 of the submenu
    assert runner.take_actions() == [retry_play(SUBMENU, "invalid")]
    runner.digit("1", 22.0)
    assert runner.take_actions() == [StopPlayback(), Transfer("300")]


def test_ivr_to_an_unknown_menu_goes_to_the_final_destination() -> None:
    runner = waiting(make_menu(options={"0": "ivr:999"}, final="queue:700"))
    runner.digit("0", 11.0)
    assert runner.take_actions() == [Transfer("700")]


def test_final_destination_to_an_unknown_menu_hangs_up() -> None:
    runner = waiting(make_menu(retries=0, final="ivr:999"))
    runner.handle_timer(15.0)
    assert runner.take_actions() == [Hangup()]


def test_menus_calling_each_other_without_input_hang_up() -> None:
    first = make_menu("800", retries=0, final="ivr:801")
    second = make_menu("801", retries=0, final="ivr:800")
    runner = waiting(first, second)
    now = 15.0
    for switch in range(MAX_JUMPS_WITHOUT_INPUT):
        runner.handle_timer(now)
        expected = "greeting-801" if switch % 2 == 0 else "greeting-800"
        assert runner.take_actions() == [Play((expected,))]
        runner.playback_finished(now)
        now += 5.0
    runner.handle_timer(now)
    assert runner.take_actions() == [Hangup()]


def test_input_resets_the_loop_guard() -> None:
    first = make_menu("800", options={"5": "ivr:801"}, retries=0)
    second = make_menu("801", options={"5": "ivr:800"}, retries=0)
    runner = waiting(first, second)
    for _ in range(3 * MAX_JUMPS_WITHOUT_INPUT):
        runner.digit("5", 11.0)
        assert runner.take_actions()[-1] in (Play(("greeting-800",)), Play(("greeting-801",)))
    assert not runner.finished


def test_closed_menus_sending_to_each_other_hang_up_at_once() -> None:
    first = make_menu("800", hours=OFFICE_HOURS, closed="ivr:801")
    second = make_menu("801", hours=OFFICE_HOURS, closed="ivr:800")
    runner = make_runner(first, second)
    runner.start(0.0, SUNDAY_NOON)
    assert runner.take_actions() == [Hangup()]


def test_repeat_as_final_destination_ends_with_the_loop_guard() -> None:
    runner = waiting(make_menu(retries=0, final="repeat"))
    now = 15.0
    for _ in range(MAX_JUMPS_WITHOUT_INPUT):
        runner.handle_timer(now)
        assert runner.take_actions() == [Play(("greeting-800",))]
        runner.playback_finished(now)
        now += 5.0
    runner.handle_timer(now)
    assert runner.take_actions() == [Hangup()]


# dial


def test_dial_collects_an_extension_ended_by_hash() -> None:
    runner = waiting(MENU)
    runner.digit("9", 11.0)
    assert runner.take_actions() == []
    assert runner.phase is Phase.DIAL_WAITING
    assert runner.next_timer() == 16.0
    press(runner, "201", 12.0)
    assert runner.next_timer() == 14.0
    runner.digit("#", 13.0)
    assert runner.take_actions() == [Transfer("201")]


def test_dial_ends_with_the_pause() -> None:
    runner = waiting(MENU)
    press(runner, "9201", 11.0)
    runner.handle_timer(13.0)
    assert runner.take_actions() == [Transfer("201")]


def test_dial_of_an_extension_nothing_longer_starts_with_is_at_once() -> None:
    runner = waiting(MENU)
    press(runner, "9555", 11.0)
    assert runner.take_actions() == [Transfer("555")]


def test_dial_of_an_unknown_extension_is_invalid() -> None:
    runner = waiting(MENU)
    press(runner, "920", 11.0)
    runner.handle_timer(13.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]
    assert runner.phase is Phase.PROMPTING


def test_dial_of_digits_no_extension_starts_with_is_invalid_at_once() -> None:
    runner = waiting(MENU)
    press(runner, "97", 11.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]


def test_dial_empty_hash_is_invalid() -> None:
    runner = waiting(MENU)
    press(runner, "9#", 11.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]


def test_dial_without_a_digit_times_out() -> None:
    runner = waiting(MENU)
    runner.digit("9", 11.0)
    runner.handle_timer(16.0)
    assert runner.take_actions() == [retry_play(MENU, "timeout")]


def test_dial_ignores_options_of_the_menu() -> None:
    runner = waiting(MENU)
    press(runner, "94", 11.0)  # "4" is repeat in the menu, and no extension starts with it
    assert runner.take_actions() == [retry_play(MENU, "invalid")]


# dial by extension


BY_EXTENSION = make_menu(options={"1": "queue:700", "2": "meeting:900"}, dial_by_extension=True)


def test_option_that_starts_an_extension_waits_for_the_pause() -> None:
    runner = waiting(BY_EXTENSION)
    runner.digit("2", 11.0)
    assert runner.take_actions() == []
    runner.handle_timer(13.0)
    assert runner.take_actions() == [Transfer("900")]


def test_option_that_starts_no_extension_acts_at_once() -> None:
    runner = waiting(BY_EXTENSION)
    runner.digit("1", 11.0)
    assert runner.take_actions() == [Transfer("700")]


def test_extension_with_a_longer_one_waits_for_the_pause() -> None:
    runner = waiting(BY_EXTENSION)
    press(runner, "201", 11.0)
    assert runner.take_actions() == []
    runner.handle_timer(13.0)
    assert runner.take_actions() == [Transfer("201")]


def test_extension_with_a_longer_one_and_hash() -> None:
    runner = waiting(BY_EXTENSION)
    press(runner, "201#", 11.0)
    assert runner.take_actions() == [Transfer("201")]


def test_extension_nothing_longer_starts_with_acts_at_once() -> None:
    runner = waiting(BY_EXTENSION)
    press(runner, "2010", 11.0)
    assert runner.take_actions() == [Transfer("2010")]
    runner = waiting(BY_EXTENSION)
    press(runner, "300", 11.0)
    assert runner.take_actions() == [Transfer("300")]


def test_extension_prefix_that_is_no_extension_is_invalid_after_the_pause() -> None:
    runner = waiting(BY_EXTENSION)
    press(runner, "30", 11.0)
    runner.handle_timer(13.0)
    assert runner.take_actions() == [retry_play(BY_EXTENSION, "invalid")]


def test_input_neither_option_nor_extension_is_invalid_at_once() -> None:
    runner = waiting(BY_EXTENSION)
    press(runner, "7", 11.0)
    assert runner.take_actions() == [retry_play(BY_EXTENSION, "invalid")]


def test_without_dial_by_extension_extensions_are_invalid() -> None:
    runner = waiting(make_menu(options={"1": "queue:700"}))
    runner.digit("3", 11.0)
    assert runner.take_actions() == [retry_play(MENU, "invalid")]


# Business hours


def test_open_menu_plays_its_greeting() -> None:
    started(make_menu(hours=OFFICE_HOURS, closed="555"), wall=MONDAY_NOON)


def test_closed_menu_goes_to_its_closed_destination() -> None:
    runner = make_runner(make_menu(hours=OFFICE_HOURS, closed="555", final="queue:700"))
    runner.start(0.0, SUNDAY_NOON)
    assert runner.take_actions() == [Transfer("555")]


def test_closed_menu_without_closed_destination_goes_to_the_final_one() -> None:
    runner = make_runner(make_menu(hours=OFFICE_HOURS, final="queue:700"))
    runner.start(0.0, SUNDAY_NOON)
    assert runner.take_actions() == [Transfer("700")]


def test_holiday_closes_the_menu() -> None:
    hours = replace(OFFICE_HOURS, holidays=frozenset({date(2024, 3, 25)}))
    runner = make_runner(make_menu(hours=hours, closed="hangup"))
    runner.start(0.0, MONDAY_NOON)
    assert runner.take_actions() == [Hangup()]


def test_submenu_schedule_is_checked_at_the_time_of_the_switch() -> None:
    evening = BusinessHours(parse_hours("mon-fri 09:00-12:30"), "UTC")
    submenu = make_menu("801", hours=evening, closed="555")
    runner = waiting(make_menu(options={"5": "ivr:801"}), submenu)
    runner.digit("5", 11.0)  # 12:00:11 on the wall clock
    assert runner.take_actions() == [Play(("greeting-801",))]
    runner = started(make_menu(options={"5": "ivr:801"}, retries=100), submenu)
    runner.digit("5", 31 * 60.0)  # 12:31
    assert runner.take_actions() == [StopPlayback(), Transfer("555")]


def test_closed_destination_to_an_unknown_menu_goes_to_the_final_one() -> None:
    runner = make_runner(make_menu(hours=OFFICE_HOURS, closed="ivr:999", final="555"))
    runner.start(0.0, SUNDAY_NOON)
    assert runner.take_actions() == [Transfer("555")]


# Failed transfers


def test_failed_transfer_counts_a_retry_and_plays_the_menu_again() -> None:
    menu = make_menu(options={"1": "201", "2": "300"}, retries=1, final="queue:700")
    runner = waiting(menu)
    runner.digit("1", 11.0)
    assert runner.take_actions() == [Transfer("201")]
    runner.transfer_failed(486, 20.0)
    assert not runner.finished
    assert runner.take_actions() == [retry_play(menu, "invalid")]
    runner.playback_finished(25.0)
    assert runner.next_timer() == 30.0
    runner.digit("2", 26.0)
    assert runner.take_actions() == [Transfer("300")]
    runner.transfer_failed(408, 40.0)  # past the retries
    assert runner.take_actions() == [Transfer("700")]
    runner.transfer_failed(480, 50.0)
    assert runner.take_actions() == [Hangup()]
    assert runner.finished


def test_failed_closed_destination_goes_to_the_final_one() -> None:
    runner = make_runner(make_menu(hours=OFFICE_HOURS, closed="555", final="queue:700"))
    runner.start(0.0, SUNDAY_NOON)
    assert runner.take_actions() == [Transfer("555")]
    runner.transfer_failed(404, 1.0)
    assert runner.take_actions() == [Transfer("700")]
    runner.transfer_failed(503, 2.0)
    assert runner.take_actions() == [Hangup()]


def test_failed_final_destination_reached_by_dial_by_extension_retry() -> None:
    runner = waiting(make_menu(dial_by_extension=True, retries=0, final="555"))
    press(runner, "300", 11.0)
    assert runner.take_actions() == [Transfer("300")]
    runner.transfer_failed(486, 12.0)
    assert runner.take_actions() == [Transfer("555")]


def test_transfer_failure_without_a_transfer_is_ignored() -> None:
    runner = waiting(MENU)
    runner.transfer_failed(486, 11.0)
    assert runner.take_actions() == []
    assert runner.phase is Phase.WAITING


def test_decisions_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pbx_services.ivr.menu")
    runner = waiting(MENU)
    press(runner, "12", 11.0)
    messages = [record.getMessage() for record in caplog.records]
    assert "menu 800: input '1' could grow, waiting 2.0 s" in messages
    assert "menu 800: option '12' -> queue:700" in messages
    assert all(record.levelno == logging.DEBUG for record in caplog.records)
