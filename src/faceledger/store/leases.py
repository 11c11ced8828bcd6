"""Named, expiring claims in the store (schema v7), so one process of several does a piece of work.

A lease is a row ``(name, owner, expires_at)``. ``claim`` takes it when it
is free or expired (or already ours) and extends it; ``renew`` extends it
only while we still hold it; ``release`` gives it up. Each is one statement
inside the caller's write transaction, so two processes cannot both win.
Owners are strings chosen by the caller (host:pid:random). Clocks: expiry
compares wall-clock times of the processes sharing the store, so they must
be on one host or NTP-synchronised (documented in docs/operations.md).
This module knows nothing of what a lease guards.
"""

from __future__ import annotations

import sqlite3


def claim(conn: sqlite3.Connection, name: str, owner: str, now: float, ttl_s: float) -> bool:
    """Take ``name`` until ``now + ttl_s`` if nobody else holds it unexpired; True when we hold it."""
    cur = conn.execute(
        "INSERT INTO leases(name, owner, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
        "WHERE leases.expires_at <= ? OR leases.owner = excluded.owner",
        (name, owner, now + ttl_s, now),
    )
    return cur.rowcount == 1


def renew(conn: sqlite3.Connection, name: str, owner: str, now: float, ttl_s: float) -> bool:
    """Extend our lease; False when it expired and someone else took it (stop the work then)."""
    cur = conn.execute("UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?",
                       (now + ttl_s, name, owner))
    return cur.rowcount == 1


def release(conn: sqlite3.Connection, name: str, owner: str) -> None:
    conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))


def holder(conn: sqlite3.Connection, name: str) -> tuple[str, float] | None:
    row = conn.execute("SELECT owner, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


def steal(conn: sqlite3.Connection, name: str, dead_owner: str, owner: str, now: float, ttl_s: float) -> bool:
    """Take ``name`` from ``dead_owner`` before its expiry (the caller knows it is gone); False if it moved on."""
    cur = conn.execute("UPDATE leases SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                       (owner, now + ttl_s, name, dead_owner))
    return cur.rowcount == 1
