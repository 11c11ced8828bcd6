"""A bounded thread pool for blocking service calls, with admission control.

``dispatch`` may run face models for 100 ms or more, so it never runs on the
event loop. At most ``max_inflight`` calls run at once and at most
``max_queue`` more wait; a call beyond that is refused at once with
``ThrottlingError`` (clients retry ThrottlingException with back-off), so a
burst cannot pile up unbounded work or memory behind the pool.

A slot is released when the work itself ends, not when the awaiting request
goes away, so a disconnected client cannot make the pool look emptier than it
is. This module knows nothing about HTTP or about what the work does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from faceledger.errors import ThrottlingError

T = TypeVar("T")


class BoundedPool:
    """``max_inflight`` worker threads plus a waiting room of ``max_queue`` calls."""

    def __init__(self, max_inflight: int, max_queue: int) -> None:
        if max_inflight < 1 or max_queue < 0:
            raise ValueError("max_inflight must be >= 1 and max_queue >= 0")
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._admitted = 0
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def admitted(self) -> int:
        """Calls running or waiting right now."""
        with self._lock:
            return self._admitted

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

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Start ``fn(*args)`` in the pool or raise ThrottlingError when it is full."""
        with self._lock:
            executor = self._ensure_executor()
            if executor is None:
                raise ThrottlingError("The service is shutting down; retry shortly.")
            if self._admitted >= self.max_inflight + self.max_queue:
                raise ThrottlingError(
                    "Too many requests in progress; slow down and retry with back-off."
                )
            self._admitted += 1
            try:
                future = executor.submit(fn, *args)
            except BaseException:
                self._admitted -= 1
                raise
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run in the pool (ThrottlingError when full)."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _release(self, _future: Future[Any]) -> None:
        with self._lock:
            self._admitted -= 1
