"""Background work shared by several API processes on one store: whose turn it is, by lease.

A turn is a lease row in the store (store/leases.py) claimed inside a write
transaction, so of several processes on one catalog exactly one wins it:
the retention sweep runs once per interval across all of them, and a video
job runs in one process, which renews its lease while it works; if that
process dies, another takes the job over once the lease has expired. The
owner names this process (host and boot, pid, and a random part, so a
recycled pid is not mistaken for the old owner); a holder on this host whose
pid no longer runs is known dead, so its work is taken over without waiting
out its lease.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from .core import Service

_owner: tuple[int, str] | None = None


def _host() -> str:
    """This machine (and boot): a pid is only meaningful there. No ':' in it (owners are split on ':')."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()[:8]
    except OSError:
        boot = "-"
    return f"{socket.gethostname()}/{boot}".replace(":", "_")


def owner() -> str:
    """This process's lease owner name (new in a forked child)."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():
        _owner = (os.getpid(), f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _owner[1]


def gone(other: str) -> bool:
    """True when ``other`` names a process of this host that no longer runs (its lease need not be waited out)."""
    host, _, rest = other.partition(":")
    pid = rest.partition(":")[0]
    if host != _host() or not pid.isdigit() or other == owner():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take(svc: Service, name: str, ttl_s: float) -> bool:
    """Claim (or extend our claim on) ``name`` for ``ttl_s``; False while another process holds it."""
    with svc.catalog.transaction() as tx:
        return svc.catalog.claim_lease(tx, name, owner(), time.time(), ttl_s)


def renew(svc: Service, name: str, ttl_s: float) -> bool:
    """Extend our lease; False when it lapsed and another process took it over."""
    with svc.catalog.transaction() as tx:
        return svc.catalog.renew_lease(tx, name, owner(), time.time(), ttl_s)


def take_over(svc: Service, name: str, ttl_s: float) -> bool:
    """``take``, or, when the holder is a process of this host that died, take it from that holder now."""
    if take(svc, name, ttl_s):
        return True
    held = svc.catalog.lease_holder(name)
    if held is None or not gone(held[0]):
        return False
    with svc.catalog.transaction() as tx:
        return svc.catalog.steal_lease(tx, name, held[0], owner(), time.time(), ttl_s)


def release(svc: Service, name: str) -> None:
    with svc.catalog.transaction() as tx:
        svc.catalog.release_lease(tx, name, owner())
