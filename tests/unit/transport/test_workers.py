"""The channel between Call Manager workers, on real AF_UNIX sockets: order, full queues, a worker away."""

from __future__ import annotations

import asyncio
import secrets

from pbx_services.transport.workers import WorkerChannel


def _host() -> str:
    return f"test-{secrets.token_hex(4)}"  # names of their own, whatever else runs here


async def _pair(host: str, received: list[bytes], undeliverable: list[bytes]) -> tuple[WorkerChannel,
                                                                                       WorkerChannel]:
    sender = WorkerChannel(host=host, port=5060, index=0, on_frame=lambda f: None,
                           on_undeliverable=undeliverable.append)
    receiver = WorkerChannel(host=host, port=5060, index=1, on_frame=received.append,
                             on_undeliverable=undeliverable.append)
    await sender.start()
    await receiver.start()
    return sender, receiver


def test_a_burst_beyond_the_receivers_queue_arrives_whole_and_in_order() -> None:
    async def run() -> list[bytes]:
        received: list[bytes] = []
        sender, receiver = await _pair(_host(), received, [])
        frames = [f"frame {n}".encode() for n in range(200)]
        assert all(sender.send(1, frame) for frame in frames)  # far more than max_dgram_qlen
        for _ in range(200):
            if len(received) == len(frames):
                break
            await asyncio.sleep(0.01)
        sender.close()
        receiver.close()
        assert received == frames
        return received

    asyncio.run(run())


def test_a_worker_that_is_not_there_is_said_at_once_and_waiting_frames_come_back() -> None:
    async def run() -> None:
        received: list[bytes] = []
        undeliverable: list[bytes] = []
        host = _host()
        sender, receiver = await _pair(host, received, undeliverable)
        assert not sender.send(7, b"to nobody")
        for n in range(50):
            sender.send(1, f"frame {n}".encode())
        receiver.close()  # the worker dies with frames still waiting for its queue
        await asyncio.sleep(0.1)
        sender.close()
        # What was in the dead worker's queue died with it (the phones retransmit); what still
        # waited here comes back, in order, to be handled by this worker.
        assert received == []
        first = 50 - len(undeliverable)
        assert 0 < first <= 20
        assert undeliverable == [f"frame {n}".encode() for n in range(first, 50)]

    asyncio.run(run())
