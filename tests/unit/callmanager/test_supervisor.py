"""What /health of several Call Manager workers says about the media and application servers."""

from __future__ import annotations

import pytest

from pbx_services.callmanager.supervisor import _endpoints


def endpoint(calls: int, *, up: bool = True, server: str = "media1") -> dict[str, object]:
    return {"server": server, "address": "198.18.0.31:2223", "up": up, "enabled": True, "calls": calls}


@pytest.mark.parametrize("kind", ["media_endpoints", "application_endpoints"])
def test_each_endpoint_counts_the_calls_of_every_worker(kind: str) -> None:
    """A worker counts only the calls it holds: the call of worker 1 must show too."""
    worker0 = {kind: [endpoint(0)]}
    worker1 = {kind: [endpoint(1), endpoint(2, server="media2")]}

    shown = _endpoints(kind, worker0, [worker0, worker1])

    assert shown == [endpoint(1)]  # as worker 0 sees the servers, with every worker's calls
    assert _endpoints(kind, {}, []) == []
