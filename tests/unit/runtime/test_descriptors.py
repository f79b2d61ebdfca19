"""The descriptor budget: the TCP cap kept below RLIMIT_NOFILE beside RTP ports and the rest."""

from __future__ import annotations

import logging
import resource

import pytest

from pbx_services.cluster.config import HttpConfig
from pbx_services.runtime.descriptors import (
    BASE_NEED,
    DescriptorLimitError,
    DescriptorNeed,
    fit_descriptors,
    rtp_ports_need,
    worker_descriptors_problem,
)


class FakeLimits:
    def __init__(self, soft: int, hard: int, *, may_raise: bool = True) -> None:
        self.soft, self.hard, self.may_raise = soft, hard, may_raise

    def get(self) -> tuple[int, int]:
        return self.soft, self.hard

    def set(self, limits: tuple[int, int]) -> None:
        if not self.may_raise:
            raise ValueError("not allowed")
        self.soft, self.hard = limits


def _fit(limits: FakeLimits, needs: list[DescriptorNeed], connections: int = 0) -> int:
    return fit_descriptors(needs, connections=connections, connections_key="sip.tcp_max_connections",
                           get_limits=limits.get, set_limits=limits.set)


def test_connections_get_what_is_configured_when_it_fits() -> None:
    limits = FakeLimits(20_000, 20_000)
    assert _fit(limits, [BASE_NEED, rtp_ports_need("media", (20000, 20199))], 10_000) == 10_000
    assert limits.soft == 20_000


def test_the_soft_limit_is_raised_as_far_as_needed_and_no_further() -> None:
    limits = FakeLimits(1024, 1_048_576)
    assert _fit(limits, [BASE_NEED], 10_000) == 10_000
    assert limits.get() == (10_064, 1_048_576)


def test_connections_are_cut_to_what_the_hard_limit_leaves_and_the_log_names_the_key(
        caplog: pytest.LogCaptureFixture) -> None:
    limits = FakeLimits(1024, 20_000)
    with caplog.at_level(logging.WARNING):
        granted = _fit(limits, [BASE_NEED, rtp_ports_need("media", (20000, 29999))], 50_000)
    assert granted == 20_000 - 64 - 10_000
    assert limits.soft == 20_000
    [record] = caplog.records
    assert record.getMessage().startswith(
        "sip.tcp_max_connections: 50000 connections do not fit under RLIMIT_NOFILE 20000 (hard limit 20000) "
        "beside 10064 descriptors reserved (64 for the process itself, 10000 for RTP ports 20000-29999 "
        "(media.port_min, media.port_max)): 9936 allowed")


def test_a_soft_limit_that_cannot_be_raised_is_what_counts() -> None:
    limits = FakeLimits(4096, 20_000, may_raise=False)
    assert _fit(limits, [BASE_NEED], 10_000) == 4096 - 64


def test_port_ranges_that_do_not_fit_stop_start_up_naming_their_keys() -> None:
    limits = FakeLimits(4096, 4096)
    with pytest.raises(DescriptorLimitError) as raised:
        _fit(limits, [BASE_NEED, rtp_ports_need("ivr", (30000, 31999)),
                      rtp_ports_need("media", (20000, 29999))], 10_000)
    assert str(raised.value).startswith(
        "media.port_min, media.port_max, ivr.port_min, ivr.port_max: 12064 descriptors needed")
    assert "may open only 4096 (RLIMIT_NOFILE, hard limit 4096)" in str(raised.value)


def test_a_media_worker_checks_its_share_of_the_ports() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ports = (20000, 20000 + 4 * hard - 1)  # each of 4 workers gets `hard` ports: more than fit
    problem = worker_descriptors_problem(section="media", ports=ports, workers=4, http=HttpConfig(),
                                         database=False)
    assert problem is not None
    assert problem.startswith("media.port_min, media.port_max, http.max_connections: ")
    assert worker_descriptors_problem(section="media", ports=ports, workers=8, http=HttpConfig(),
                                      database=False) is None
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[1] == hard
