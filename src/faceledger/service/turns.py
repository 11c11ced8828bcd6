"""Background work shared by several API processes on one store: whose turn it is, by lease.

A turn is a lease row in the store (store/leases.py) claimed inside a write
transaction, so of several processes on one catalog exactly one wins it:
the retention sweep runs once per interval across all of them, and a video
job runs in one process, which renews its lease while it works; if that
process dies, another takes the job over once the lease has expired. The
owner names this process (host, pid and a random part, so a recycled pid is
not mistaken for the old owner).
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from .core import Service

_owner: tuple[int, str] | None = None


def owner() -> str:
    """This process's lease owner name (new in a forked child)."""
    global _owner
    if _owner is None or _owner[0] != os.getpid():
        _owner = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    return _owner[1]


def take(svc: Service, name: str, ttl_s: float) -> bool:
    """Claim (or extend our claim on) ``name`` for ``ttl_s``; False while another process holds it."""
    with svc.catalog.transaction() as tx:
        return svc.catalog.claim_lease(tx, name, owner(), time.time(), ttl_s)


def renew(svc: Service, name: str, ttl_s: float) -> bool:
    """Extend our lease; False when it lapsed and another process took it over."""
    with svc.catalog.transaction() as tx:
        return svc.catalog.renew_lease(tx, name, owner(), time.time(), ttl_s)


def release(svc: Service, name: str) -> None:
    with svc.catalog.transaction() as tx:
        svc.catalog.release_lease(tx, name, owner())
