"""A bounded thread pool for blocking service calls, behind a wait queue with a deadline.

``dispatch`` may run face models for 100 ms or more, so it never runs on the
event loop. At most ``max_inflight`` calls run at once. A call that finds
every slot busy waits in a FIFO queue instead of failing, as long as

* fewer than ``max_queue`` calls are already waiting, and
* its expected wait (calls ahead of it x the recent mean time a call holds a
  slot / ``max_inflight``) is at most ``max_wait_s``;

otherwise it is refused at once with ``ThrottlingError``. A call that has
waited ``DEADLINE_FACTOR x max_wait_s`` without getting a slot (the estimate
was badly wrong, e.g. the machine slowed down) is refused then; the slack
keeps a call admitted on a fair estimate from being refused after it has
already waited most of its time. So a burst queues and completes, and only a sustained overload
is pushed back to the clients' retry logic.

A slot is released when the work itself ends, not when the awaiting request
goes away, so a disconnected client cannot make the pool look emptier than it
is. Queue state lives on the event loop; worker threads only hand slots back
through ``call_soon_threadsafe``. This module knows nothing about HTTP or
about what the work does.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from faceledger.errors import ThrottlingError

T = TypeVar("T")

# Weight of the newest service time in the running mean the expected wait uses.
EWMA_ALPHA = 0.2
# A waiting call is refused after this many times max_wait_s without a slot.
DEADLINE_FACTOR = 2.0


class BoundedPool:
    """``max_inflight`` worker threads plus a deadline-bounded waiting room of ``max_queue`` calls."""

    def __init__(self, max_inflight: int, max_queue: int, max_wait_s: float = 20.0) -> None:
        if max_inflight < 1 or max_queue < 0 or max_wait_s < 0:
            raise ValueError("max_inflight must be >= 1, max_queue >= 0 and max_wait_s >= 0")
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._running = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._mean_s: float | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.refused = 0

    @property
    def admitted(self) -> int:
        """Calls running or waiting right now."""
        return self._running + sum(1 for w in self._waiters if not w.done())

    @property
    def mean_service_s(self) -> float | None:
        """Recent mean time a call held a slot (None before the first one ended)."""
        return self._mean_s

    def expected_wait_s(self, ahead: int) -> float:
        """How long a call with ``ahead`` calls waiting before it should wait for a slot."""
        return (ahead + 1) * (self._mean_s or 0.0) / self.max_inflight

    def start(self) -> None:
        """Create the worker threads' executor (idempotent; also done on first use)."""
        with self._lock:
            self._closed = False
            self._ensure_executor()

    def _ensure_executor(self) -> ThreadPoolExecutor | None:
        # Caller holds the lock. After shutdown() the pool stays closed until start().
        if self._executor is None and not self._closed:
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_inflight, thread_name_prefix="faceledger-dispatch"
            )
        return self._executor

    def shutdown(self) -> None:
        """Refuse new work, let every admitted call finish, then stop the threads."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run in the pool, after waiting for a slot (ThrottlingError if too long)."""
        loop = asyncio.get_running_loop()
        await self._acquire(loop)
        try:
            future = self._submit(loop, fn, *args)
        except BaseException:
            self._release_slot()
            raise
        return await asyncio.wrap_future(future)

    async def _acquire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed:
            raise ThrottlingError("The service is shutting down; retry shortly.")
        self._waiters = collections.deque(w for w in self._waiters if not w.done())
        if self._running < self.max_inflight and not self._waiters:
            self._running += 1
            return
        ahead = len(self._waiters)
        if ahead >= self.max_queue or self.expected_wait_s(ahead) > self.max_wait_s:
            self.refused += 1
            raise ThrottlingError(
                f"Too many requests in progress (about {self.expected_wait_s(ahead):.1f} s of work "
                f"queued, limit {self.max_wait_s:g} s); slow down and retry with back-off."
            )
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=DEADLINE_FACTOR * self.max_wait_s)
        except BaseException:  # cancelled while waiting: give back a slot handed over meanwhile
            if waiter.done() and not waiter.cancelled():
                self._release_slot()
            waiter.cancel()
            raise
        if waiter.done():  # the slot was handed over (same loop, so no race with the check)
            return
        waiter.cancel()
        self.refused += 1
        raise ThrottlingError(
            f"No engine slot became free within {DEADLINE_FACTOR * self.max_wait_s:g} s; "
            "retry with back-off."
        )

    def _submit(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            executor = self._ensure_executor()
        if executor is None:
            raise ThrottlingError("The service is shutting down; retry shortly.")
        started = [0.0]

        def timed() -> T:
            started[0] = time.monotonic()
            return fn(*args)

        def done(_future: Future[Any]) -> None:
            took = time.monotonic() - started[0] if started[0] else None
            try:
                loop.call_soon_threadsafe(self._release_slot, took)
            except RuntimeError:  # the loop is gone (server stopped): nobody is waiting
                pass

        future = executor.submit(timed)
        future.add_done_callback(done)
        return future

    def _release_slot(self, took: float | None = None) -> None:
        """On the loop: record how long the slot was held and hand it to the next waiter, if any."""
        if took is not None:
            self._mean_s = took if self._mean_s is None else (
                EWMA_ALPHA * took + (1 - EWMA_ALPHA) * self._mean_s)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes over; _running is unchanged
                return
        self._running -= 1
