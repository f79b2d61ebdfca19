import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from pbx_services.queue.strategies import (
    STRATEGY_ALIASES,
    AgentView,
    CallNeeds,
    QueueMemory,
    Selection,
    Strategy,
    parse_strategy,
    pick,
)

NO_NEEDS = CallNeeds()
SINGLE_AGENT_STRATEGIES = [s for s in Strategy if s is not Strategy.RING_ALL]
TIERED_SINGLE_AGENT_STRATEGIES = [s for s in SINGLE_AGENT_STRATEGIES if s is not Strategy.WEIGHTED_RANDOM]


def agent(extension: str, order: int, *, penalty: int = 0, skills: Mapping[str, int] | None = None,
          calls_taken: int = 0, talk_seconds: float = 0.0, idle_since: float = 0.0,
          available: bool = True) -> AgentView:
    return AgentView(extension=extension, order=order, penalty=penalty, skills=skills or {},
                     calls_taken=calls_taken, talk_seconds=talk_seconds, idle_since=idle_since,
                     available=available)


def picks(strategy: Strategy, agents: Sequence[AgentView], count: int, *, memory: QueueMemory | None = None,
          needs: CallNeeds = NO_NEEDS, seed: int = 1) -> list[str]:
    """The one agent rung by each of `count` picks in a row."""
    memory = QueueMemory() if memory is None else memory
    rng = random.Random(seed)
    rung = []
    for _ in range(count):
        [extension] = pick(strategy, agents, needs, memory, rng).ring
        rung.append(extension)
    return rung


def test_ring_all_rings_the_whole_best_tier_in_order() -> None:
    agents = [agent("1003", 2), agent("1001", 0), agent("1002", 1, available=False),
              agent("1004", 3, penalty=1), agent("1005", 4)]

    assert pick(Strategy.RING_ALL, agents, NO_NEEDS, QueueMemory(), random.Random(1)) == \
        Selection(ring=["1001", "1003", "1005"], tier=0)


def test_linear_rings_the_first_available_in_the_configured_order_every_time() -> None:
    agents = [agent("1001", 2), agent("1002", 0, available=False), agent("1003", 1)]

    assert picks(Strategy.LINEAR, agents, 3) == ["1003", "1003", "1003"]


def test_round_robin_goes_on_after_the_last_rung_in_extension_order_and_wraps() -> None:
    agents = [agent("1003", 0), agent("1001", 1), agent("1004", 2, available=False), agent("1002", 3)]
    memory = QueueMemory()

    assert picks(Strategy.ROUND_ROBIN, agents, 5, memory=memory) == ["1001", "1002", "1003", "1001", "1002"]
    assert memory.last_rung == "1002"


def test_round_robin_goes_on_after_an_agent_that_left_the_queue() -> None:
    agents = [agent("1001", 0), agent("1003", 1), agent("1005", 2)]

    assert picks(Strategy.ROUND_ROBIN, agents, 2, memory=QueueMemory(last_rung="1004")) == ["1005", "1001"]


def test_round_robin_ordered_goes_on_after_the_last_rung_in_the_configured_order() -> None:
    agents = [agent("1003", 0), agent("1001", 1), agent("1004", 2, available=False), agent("1002", 3)]
    memory = QueueMemory()

    assert picks(Strategy.ROUND_ROBIN_ORDERED, agents, 5, memory=memory) == \
        ["1003", "1001", "1002", "1003", "1001"]
    assert memory.last_rung == "1001"


def test_round_robin_ordered_goes_on_after_the_last_rung_while_it_is_busy() -> None:
    agents = [agent("1001", 0), agent("1002", 1, available=False), agent("1003", 2)]

    assert picks(Strategy.ROUND_ROBIN_ORDERED, agents, 1, memory=QueueMemory(last_rung="1002")) == ["1003"]


def test_round_robin_ordered_starts_from_the_first_when_the_last_rung_left_the_queue() -> None:
    agents = [agent("1001", 0), agent("1002", 1)]

    assert picks(Strategy.ROUND_ROBIN_ORDERED, agents, 1, memory=QueueMemory(last_rung="1009")) == ["1001"]


def test_longest_idle_rings_the_agent_idle_since_the_earliest() -> None:
    agents = [agent("1001", 0, idle_since=500.0), agent("1002", 1, idle_since=120.0),
              agent("1003", 2, idle_since=60.0, available=False), agent("1004", 3, idle_since=300.0)]

    assert picks(Strategy.LONGEST_IDLE, agents, 2) == ["1002", "1002"]


def test_fewest_calls_rings_the_agent_with_the_fewest_calls_taken() -> None:
    agents = [agent("1001", 0, calls_taken=7), agent("1002", 1, calls_taken=2, available=False),
              agent("1003", 2, calls_taken=4), agent("1004", 3, calls_taken=5)]

    assert picks(Strategy.FEWEST_CALLS, agents, 1) == ["1003"]


def test_least_talk_time_rings_the_agent_who_talked_least() -> None:
    agents = [agent("1001", 0, talk_seconds=900.5), agent("1002", 1, talk_seconds=30.0, available=False),
              agent("1003", 2, talk_seconds=240.0), agent("1004", 3, talk_seconds=241.0)]

    assert picks(Strategy.LEAST_TALK_TIME, agents, 1) == ["1003"]


def test_random_rings_each_available_agent_of_the_best_tier_about_as_often() -> None:
    agents = [agent("1001", 0), agent("1002", 1), agent("1003", 2, available=False), agent("1004", 3),
              agent("1005", 4, penalty=1)]

    rung = Counter(picks(Strategy.RANDOM, agents, 9000))

    assert set(rung) == {"1001", "1002", "1004"}
    assert all(abs(count / 9000 - 1 / 3) < 0.02 for count in rung.values())


@pytest.mark.parametrize("strategy", [Strategy.RANDOM, Strategy.WEIGHTED_RANDOM])
def test_a_seeded_random_repeats_its_picks(strategy: Strategy) -> None:
    agents = [agent(f"10{n:02}", n, penalty=n % 3) for n in range(10)]

    assert picks(strategy, agents, 50, seed=7) == picks(strategy, agents, 50, seed=7)


@pytest.mark.parametrize(("penalties", "shares"), [
    ((0, 0, 1), (5 / 12, 5 / 12, 1 / 6)),
    ((0, 1), (3 / 4, 1 / 4)),
    ((0, 3), (7 / 8, 1 / 8)),
])
def test_weighted_random_follows_asterisk_draws_across_penalties(
        penalties: tuple[int, ...], shares: tuple[float, ...]) -> None:
    """Each draws from [0, 1 + penalty), the lowest wins: with penalties 0 and 1 the second is
    lowest 1 time in 4 (where weights of 1/(1 + penalty) would make it 1 in 3)."""
    agents = [agent(f"100{order}", order, penalty=penalty) for order, penalty in enumerate(penalties)]
    unavailable = agent("1009", 9, penalty=0, available=False)

    rung = Counter(picks(Strategy.WEIGHTED_RANDOM, [*agents, unavailable], 10_000))

    assert rung.keys() == {a.extension for a in agents}
    for each, share in zip(agents, shares, strict=True):
        assert rung[each.extension] / 10_000 == pytest.approx(share, abs=0.015)


def test_weighted_random_names_no_tier() -> None:
    agents = [agent("1001", 0, penalty=2)]

    assert pick(Strategy.WEIGHTED_RANDOM, agents, NO_NEEDS, QueueMemory(), random.Random(1)) == \
        Selection(ring=["1001"], tier=None)


@pytest.mark.parametrize("strategy", TIERED_SINGLE_AGENT_STRATEGIES)
def test_a_higher_tier_is_rung_only_when_no_lower_tier_agent_is_available(strategy: Strategy) -> None:
    """The tier-1 agent is better by every measure, but tier 0 has somebody available."""
    tier_0 = [agent("1002", 1, calls_taken=9, talk_seconds=900.0, idle_since=900.0),
              agent("1003", 2, available=False)]
    tier_1 = [agent("1001", 0, penalty=1), agent("1004", 3, penalty=2)]

    first = pick(strategy, tier_0 + tier_1, NO_NEEDS, QueueMemory(), random.Random(1))
    nobody_in_tier_0 = [agent("1002", 1, available=False), agent("1003", 2, available=False)]
    second = pick(strategy, nobody_in_tier_0 + tier_1, NO_NEEDS, QueueMemory(), random.Random(1))

    assert first == Selection(ring=["1002"], tier=0)
    assert second == Selection(ring=["1001"], tier=1)


def test_ring_all_rings_the_next_tier_when_the_best_has_nobody_available() -> None:
    agents = [agent("1001", 0, available=False), agent("1002", 1, penalty=3), agent("1003", 2, penalty=3),
              agent("1004", 3, penalty=5)]

    assert pick(Strategy.RING_ALL, agents, NO_NEEDS, QueueMemory(), random.Random(1)) == \
        Selection(ring=["1002", "1003"], tier=3)


@pytest.mark.parametrize("strategy", list(Strategy))
def test_only_agents_with_every_needed_skill_at_the_needed_level_are_rung(strategy: Strategy) -> None:
    """A tier-0 agent lacking a skill does not hold the tier: the qualifying tier-1 one is rung."""
    needs = CallNeeds(skills={"fr": 3, "billing": 1})
    agents = [agent("1001", 0, skills={"fr": 2, "billing": 5}), agent("1002", 1, skills={"fr": 9}),
              agent("1003", 2, skills={"de": 9, "billing": 9}),
              agent("1004", 3, penalty=1, skills={"fr": 3, "billing": 1, "de": 2})]
    expected_tier = None if strategy is Strategy.WEIGHTED_RANDOM else 1

    assert pick(strategy, agents, needs, QueueMemory(), random.Random(1)) == \
        Selection(ring=["1004"], tier=expected_tier)


@pytest.mark.parametrize("strategy", [Strategy.LONGEST_IDLE, Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME])
def test_a_tie_goes_to_the_higher_total_level_in_the_needed_skills_then_to_the_first(
        strategy: Strategy) -> None:
    needs = CallNeeds(skills={"fr": 2, "billing": 1})
    same = {"calls_taken": 3, "talk_seconds": 60.0, "idle_since": 10.0}
    agents = [agent("1001", 0, skills={"fr": 4, "billing": 1, "de": 9}, **same),
              agent("1002", 1, skills={"fr": 2, "billing": 5}, **same),
              agent("1003", 2, skills={"fr": 3, "billing": 4}, **same)]
    more_skilled_but_worse = agent("1004", 3, skills={"fr": 10, "billing": 10}, calls_taken=4,
                                   talk_seconds=61.0, idle_since=11.0)

    assert picks(strategy, [*agents, more_skilled_but_worse], 1, needs=needs) == ["1002"]
    assert picks(strategy, [agents[0], agents[2]], 1, needs=needs) == ["1003"]
    assert picks(strategy, agents[:1] + [agent("1009", 5, skills={"fr": 4, "billing": 1}, **same)], 1,
                 needs=needs) == ["1001"]


@pytest.mark.parametrize("strategy", [Strategy.LONGEST_IDLE, Strategy.FEWEST_CALLS, Strategy.LEAST_TALK_TIME])
def test_without_needed_skills_a_tie_goes_to_the_first_in_order(strategy: Strategy) -> None:
    agents = [agent("1001", 2, skills={"fr": 9}), agent("1002", 1), agent("1003", 3)]

    assert picks(strategy, agents, 1) == ["1002"]


@pytest.mark.parametrize("strategy", list(Strategy))
def test_nobody_available_rings_nobody_and_forgets_nothing(strategy: Strategy) -> None:
    agents = [agent("1001", 0, available=False), agent("1002", 1, skills={"fr": 5})]
    memory = QueueMemory(last_rung="1001")

    selection = pick(strategy, agents, CallNeeds(skills={"fr": 6}), memory, random.Random(1))

    assert selection == Selection(ring=[], tier=None)
    assert memory == QueueMemory(last_rung="1001")
    assert pick(strategy, [], NO_NEEDS, memory, random.Random(1)) == Selection(ring=[], tier=None)


@pytest.mark.parametrize("strategy", [s for s in SINGLE_AGENT_STRATEGIES
                                      if s not in {Strategy.ROUND_ROBIN, Strategy.ROUND_ROBIN_ORDERED}])
def test_only_the_round_robin_strategies_remember_whom_they_rang(strategy: Strategy) -> None:
    memory = QueueMemory(last_rung="1001")

    picks(strategy, [agent("1001", 0), agent("1002", 1)], 3, memory=memory)

    assert memory == QueueMemory(last_rung="1001")


@pytest.mark.parametrize(("text", "expected"), [
    ("ringall", Strategy.RING_ALL),
    ("ring-all", Strategy.RING_ALL),
    ("rrmemory", Strategy.ROUND_ROBIN),
    ("roundrobin", Strategy.ROUND_ROBIN),
    ("round-robin", Strategy.ROUND_ROBIN),
    ("rrordered", Strategy.ROUND_ROBIN_ORDERED),
    ("leastrecent", Strategy.LONGEST_IDLE),
    ("longest-idle-agent", Strategy.LONGEST_IDLE),
    ("fewestcalls", Strategy.FEWEST_CALLS),
    ("agent-with-fewest-calls", Strategy.FEWEST_CALLS),
    ("agent-with-least-talk-time", Strategy.LEAST_TALK_TIME),
    ("random", Strategy.RANDOM),
    ("wrandom", Strategy.WEIGHTED_RANDOM),
    ("linear", Strategy.LINEAR),
    ("top-down", Strategy.LINEAR),
    ("sequentially-by-agent-order", Strategy.LINEAR),
    ("RingAll", Strategy.RING_ALL),
    (" RRMEMORY ", Strategy.ROUND_ROBIN),
    ("Longest-Idle-Agent", Strategy.LONGEST_IDLE),
    ("WEIGHTED_RANDOM", Strategy.WEIGHTED_RANDOM),
])
def test_parse_strategy_accepts_our_names_and_asterisk_and_freeswitch_aliases_in_any_case(
        text: str, expected: Strategy) -> None:
    assert parse_strategy(text) is expected


@pytest.mark.parametrize("strategy", list(Strategy))
def test_parse_strategy_reads_back_every_strategy(strategy: Strategy) -> None:
    assert parse_strategy(str(strategy)) is strategy


def test_parse_strategy_refuses_an_unknown_name_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(ValueError) as raised:
        parse_strategy("ring-progressively")

    message = str(raised.value)
    assert message.startswith("unknown queue strategy 'ring-progressively': valid are ring-all, round-robin,")
    assert all(strategy.value in message for strategy in Strategy)
    assert all(alias in message for alias in STRATEGY_ALIASES)


def test_an_agent_with_a_negative_penalty_or_a_skill_level_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^agent 1001: penalty -1 is negative$"):
        agent("1001", 0, penalty=-1)
    with pytest.raises(ValueError, match=r"^agent 1001: skill 'fr' has level 11, not 1-10$"):
        agent("1001", 0, skills={"fr": 11})
    with pytest.raises(ValueError, match=r"^call: skill 'fr' has level 0, not 1-10$"):
        CallNeeds(skills={"fr": 0})
