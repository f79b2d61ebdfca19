"""A daemon's one /health from its components' parts."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.registry import Collector

from pbx_services.runtime.daemon import merged_health, package_version


class Part:
    def __init__(self, role: str, health: dict[str, object]) -> None:
        self.name = f"{role} part"
        self.role = role
        self._health = health

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def listening_on(self) -> str:
        return ""

    def health(self) -> dict[str, object]:
        return self._health

    def collectors(self) -> Sequence[Collector]:
        return ()


def test_one_role_gives_its_fields_with_the_daemons_status_role_and_version() -> None:
    health = merged_health("ivr", [Part("ivr", {"status": "ok", "calls": 3})])

    assert health == {"status": "ok", "calls": 3, "role": "ivr", "version": package_version()}


def test_several_roles_keep_each_ones_own_part_and_are_ok_only_when_all_are() -> None:
    """The IVR's and the queue's "calls" would overwrite each other at the top."""
    ivr = {"status": "ok", "calls": 1}
    queue = {"status": "degraded", "calls": 5}

    health = merged_health("allinone", [Part("ivr", ivr), Part("queue", queue)])

    assert health["status"] == "degraded"
    assert health["roles"] == {"ivr": ivr, "queue": queue}
