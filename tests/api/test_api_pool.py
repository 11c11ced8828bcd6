"""The engine-slot pool's wait queue, driven directly on an event loop (no HTTP)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from faceledger.api.pool import BoundedPool
from faceledger.errors import ThrottlingError


def test_waiters_are_served_in_order_and_cancelled_waiters_give_their_turn_away() -> None:
    async def scenario() -> tuple[list[str], int]:
        pool = BoundedPool(1, 4, max_wait_s=5)
        gate = threading.Event()
        order: list[str] = []

        def work(name: str) -> str:
            if name == "first":
                gate.wait(5)
            order.append(name)
            return name

        first = asyncio.create_task(pool.run(work, "first"))
        await asyncio.sleep(0.05)
        gone = asyncio.create_task(pool.run(work, "gone"))
        second = asyncio.create_task(pool.run(work, "second"))
        await asyncio.sleep(0.05)
        assert pool.admitted == 3
        gone.cancel()  # a waiter whose request went away
        await asyncio.sleep(0.01)
        gate.set()
        assert await first == "first" and await second == "second"
        with pytest.raises(asyncio.CancelledError):
            await gone
        await asyncio.sleep(0.01)
        pool.shutdown()
        return order, pool.admitted

    order, admitted = asyncio.run(scenario())
    assert order == ["first", "second"] and admitted == 0


def test_full_queue_refuses_at_once_and_learns_the_service_time() -> None:
    async def scenario() -> None:
        pool = BoundedPool(1, 1, max_wait_s=5)
        gate = threading.Event()
        running = asyncio.create_task(pool.run(gate.wait, 5))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(pool.run(lambda: None))
        await asyncio.sleep(0.01)
        with pytest.raises(ThrottlingError):
            await pool.run(lambda: None)
        gate.set()
        await running
        await waiting
        assert pool.mean_service_s is not None and pool.mean_service_s > 0.04
        assert pool.expected_wait_s(3) == pytest.approx(4 * pool.mean_service_s)
        assert pool.refused == 1 and pool.admitted == 0
        pool.shutdown()

    asyncio.run(scenario())
