"""RTP ports of one worker (even ports for RTP, the odd one after each for RTCP), and their
share-out among the workers of a media or application server."""

from __future__ import annotations

from collections import deque


def worker_port_ranges(port_min: int, port_max: int, workers: int) -> list[tuple[int, int]]:
    """Split [port_min, port_max] into `workers` slices of whole RTP/RTCP pairs, as equal as can be.

    Each slice is (first RTP port, last RTCP port); a slice that would hold no pair is an error.
    """
    first = port_min + (port_min % 2)
    pairs = (port_max - first + 1) // 2
    if pairs < workers:
        raise ValueError(
            f"the port range {port_min}-{port_max} has {pairs} RTP/RTCP pairs, "
            f"fewer than the {workers} workers"
        )
    share, extra = divmod(pairs, workers)
    ranges = []
    for index in range(workers):
        count = share + (1 if index < extra else 0)
        ranges.append((first, first + 2 * count - 1))
        first += 2 * count
    return ranges


class PortAllocator:
    """Hands out the RTP ports of [port_min, port_max], the longest free first.

    A freed port goes to the back of the line, so stray packets of an ended call do not
    reach the next call for a while.
    """

    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)
        self._free: deque[int] = deque(range(first, port_max, 2))
        self._in_use: set[int] = set()
        self.capacity = len(self._free)

    @property
    def free(self) -> int:
        """RTP/RTCP port pairs not in use."""
        return len(self._free)

    def allocate(self) -> int | None:
        """An RTP port (RTCP is the next one), or None when every pair is in use."""
        if not self._free:
            return None
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        if port not in self._in_use:
            raise ValueError(f"port {port} is not allocated")
        self._in_use.remove(port)
        self._free.append(port)


def worker_ports_problem(*, section: str, first_port_key: str, first_port: int, workers: int, port_min: int,
                         port_max: int) -> str | None:
    """What is wrong with giving `workers` workers a port each from `first_port` and a share of
    [port_min, port_max] (a config error naming the key), or None."""
    try:
        worker_port_ranges(port_min, port_max, workers)
    except ValueError as exc:
        return f"{section}.port_max: {exc}"
    if first_port + workers - 1 > 65535:
        return f"{section}.{first_port_key}: {first_port} + {workers} workers goes past port 65535"
    return None
