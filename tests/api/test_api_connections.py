"""The connection registry's eviction order, with stand-in connections (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceledger.api.connections import ConnectionLimits, _Registry


@dataclass(eq=False)
class Conn:
    address: str
    waiting_since: float | None
    requests: int = 0
    dropped: bool = False
    registry: Any = None

    def drop(self) -> None:
        self.dropped = True
        self.waiting_since = None
        self.registry.forget(self)


def admit(registry: _Registry, conn: Conn) -> bool:
    conn.registry = registry
    return registry.admit(conn)  # type: ignore[arg-type]


def test_never_used_idle_connections_go_first_then_the_oldest_idle_then_refusal() -> None:
    registry = _Registry(ConnectionLimits(max_connections=10, max_per_address=2))
    used = Conn("a", waiting_since=1.0, requests=3)  # a keep-alive client between requests
    fresh = Conn("a", waiting_since=2.0)  # connected, never sent a request
    assert admit(registry, used) and admit(registry, fresh)
    newcomer = Conn("a", waiting_since=3.0)
    assert admit(registry, newcomer)
    assert fresh.dropped and not used.dropped  # never-used first, though it is the newer
    used.waiting_since = None  # now busy with a request: not evictable
    late = Conn("a", waiting_since=4.0)
    assert admit(registry, late) and newcomer.dropped
    late.waiting_since = None
    assert not admit(registry, Conn("a", waiting_since=5.0))  # everyone busy: refused
    assert registry.refused == 1 and registry.evicted == 2
    assert admit(registry, Conn("b", waiting_since=6.0))  # another address has its own cap


def test_the_global_cap_evicts_across_addresses() -> None:
    registry = _Registry(ConnectionLimits(max_connections=3, max_per_address=3))
    idle = [Conn(f"10.0.0.{i}", waiting_since=float(i)) for i in range(3)]
    for c in idle:
        assert admit(registry, c)
    assert admit(registry, Conn("10.0.0.9", waiting_since=9.0))
    assert [c.dropped for c in idle] == [True, False, False]
    assert len(registry.every) == 3 and "10.0.0.0" not in registry.by_address
