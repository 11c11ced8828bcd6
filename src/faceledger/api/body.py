"""Read a request body: capped in size, bounded in time, and counted against a memory budget.

Three limits, so that neither a large nor a slow body can hurt other clients:

* ``max_body_bytes`` per request (ImageTooLargeError; past the cap the rest is
  drained, up to DRAIN_LIMIT_BYTES, so the client reads the error rather than
  a reset);
* ``timeout_s`` for the whole body (RequestTimeoutError): a client that
  declares ``Content-Length: 10`` and sends nothing holds its connection for
  at most that long;
* a :class:`BodyBudget` of bytes held by every request between the start of
  its body and the end of its response (ThrottlingError when full). It bounds
  memory, not requests: a stalled body holds only what it has sent.

This module knows nothing about signatures or operations.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from starlette.requests import ClientDisconnect, Request

from faceledger.errors import ImageTooLargeError, RequestTimeoutError, ThrottlingError

# Past the cap we keep reading (and discarding) up to this many bytes so that
# the client, still writing, reads our error instead of a connection reset.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class BodyBudget:
    """Bytes that request bodies may hold in memory at once, across all requests (event-loop only)."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("the body budget must be at least one byte")
        self.limit_bytes = limit_bytes
        self.held = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[_Hold]:
        """Bytes taken through the yielded hold are given back when the block ends."""
        hold = _Hold(self)
        try:
            yield hold
        finally:
            self.held -= hold.bytes


class _Hold:
    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.bytes = 0

    def take(self, n: int) -> None:
        if self.budget.held + n > self.budget.limit_bytes:
            raise ThrottlingError(
                "Too many request bytes in progress on this server; retry with back-off."
            )
        self.budget.held += n
        self.bytes += n


async def read_body(request: Request, limit: int, timeout_s: float, hold: _Hold) -> bytes:
    """The whole body within ``timeout_s``, or ImageTooLargeError once it passes ``limit`` bytes.

    A declared Content-Length over ``limit`` is refused before anything is
    read; otherwise the body is counted (size and budget) as it streams.
    """
    try:
        return await asyncio.wait_for(_read(request, limit, hold), timeout_s)
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {timeout_s:g} s; send it promptly."
        ) from None


async def _read(request: Request, limit: int, hold: _Hold) -> bytes:
    too_large = ImageTooLargeError(
        f"Request body exceeds {limit} bytes; images must be at most 5 MB "
        "(base64-encoded in the JSON body)."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        expects_continue = request.headers.get("expect", "").lower() == "100-continue"
        if not expects_continue and int(declared) <= DRAIN_LIMIT_BYTES:
            await _drain(request)
        raise too_large
    # Bytes are taken as they arrive, not as declared: a client that declares 7 MB
    # and stalls must not reserve budget that the clients actually sending need.
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await _drain(request, stream, size)
            raise too_large
        hold.take(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(
    request: Request, stream: AsyncIterator[bytes] | None = None, seen: int = 0
) -> None:
    with contextlib.suppress(ClientDisconnect):
        async for chunk in stream or request.stream():
            seen += len(chunk)
            if seen > DRAIN_LIMIT_BYTES:
                return
