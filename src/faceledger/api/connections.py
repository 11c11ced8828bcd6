"""Connection caps that idle or slow sockets cannot use to lock real clients out.

uvicorn's own ``limit_concurrency`` counts idle connections, so a few hundred
sockets that connect and never send a request make it answer every real
request 503. This module replaces it with an h11 protocol that:

* closes a connection that has not sent complete request headers within
  ``header_timeout_s`` of connecting or of its previous response (slowloris
  on the headers; a trickle of bytes does not reset the clock);
* caps open connections per client address and in total. When a cap is
  reached, the new connection does not get refused while an older one is
  merely waiting for headers: the oldest such connection is closed instead
  (never-used ones first), so a flood of idle sockets only evicts itself and
  a client that sends its request promptly always gets in. Only when every
  connection in the scope is busy with a request is the new one closed.

It decides nothing about requests (authentication, bodies, admission to the
engine): the app does that once headers have arrived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ConnectionLimits:
    """The caps (documented in docs/settings.md as FACELEDGER_MAX_CONNECTIONS* and HEADER_TIMEOUT_S)."""

    max_connections: int = 1024
    max_per_address: int = 128
    header_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_per_address < 1 or self.header_timeout_s <= 0:
            raise ValueError("connection caps must be >= 1 and the header timeout > 0")


@dataclass
class _Registry:
    """Open connections, all of them and by client address (one per server)."""

    limits: ConnectionLimits
    every: set[GuardedH11Protocol] = field(default_factory=set)
    by_address: dict[str, set[GuardedH11Protocol]] = field(default_factory=dict)
    evicted: int = 0
    refused: int = 0

    def admit(self, conn: GuardedH11Protocol) -> bool:
        """Make room for ``conn`` (evicting idle ones) and register it; False when there is none."""
        peers = self.by_address.setdefault(conn.address, set())
        for scope, cap in ((peers, self.limits.max_per_address), (self.every, self.limits.max_connections)):
            while len(scope) >= cap:
                victim = _oldest_idle(scope)
                if victim is None:
                    self.refused += 1
                    if not peers:
                        del self.by_address[conn.address]
                    return False
                self.evicted += 1
                victim.drop()  # leaves the registry now, not when the close completes
        peers.add(conn)
        self.every.add(conn)
        return True

    def forget(self, conn: GuardedH11Protocol) -> None:
        self.every.discard(conn)
        peers = self.by_address.get(conn.address)
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del self.by_address[conn.address]


def _oldest_idle(scope: set[GuardedH11Protocol]) -> GuardedH11Protocol | None:
    idle = [c for c in scope if c.waiting_since is not None]
    if not idle:
        return None
    return min(idle, key=lambda c: (c.requests > 0, c.waiting_since))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the caps above; build one class per server with :func:`protocol_class`."""

    registry: _Registry

    address: str = "?"
    requests: int = 0
    waiting_since: float | None = None  # monotonic time it started waiting for headers; None mid-request
    _header_timer: asyncio.TimerHandle | None = None
    _registered: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else "?"
        if not self.registry.admit(self):
            self.transport.close()
            return
        self._registered = True
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._registered:
            self.registry.forget(self)
            self._registered = False
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle and self.cycle is not None:  # a new request's headers arrived
            self.requests += 1
            self.waiting_since = None
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()  # may start a pipelined request (handle_events above)
        if not self.transport.is_closing() and self.cycle is cycle:
            self._await_headers()

    def drop(self) -> None:
        """Close this connection now (evicted, or too slow with its headers)."""
        self._cancel_header_timer()
        self.waiting_since = None
        if self._registered:
            self.registry.forget(self)
            self._registered = False
        if not self.transport.is_closing():
            self.transport.close()

    def _await_headers(self) -> None:
        self.waiting_since = time.monotonic()
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.registry.limits.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.waiting_since is not None:
            self.drop()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


def protocol_class(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class with its own registry, for ``uvicorn.Config(http=...)``."""
    registry = _Registry(limits)
    attrs: dict[str, Any] = {"registry": registry}
    return type("FaceledgerH11Protocol", (GuardedH11Protocol,), attrs)
