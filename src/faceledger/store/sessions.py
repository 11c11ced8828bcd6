"""Console sessions in the store (schema v6), so every API process of one deployment shares them.

A row is keyed by the SHA-256 of the session cookie: the table alone lets
nobody in. ``ledger_ref`` is what the ledger calls the session. Portable SQL
(SQLite and PostgreSQL). This module reads and writes rows; when a session
ends is the console's rule.
"""

from __future__ import annotations

import sqlite3
from typing import Any

COLUMNS = "digest, ledger_ref, key_id, csrf, created_at, seen_at"


def put(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    conn.execute(f"INSERT INTO console_sessions({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT(digest) DO UPDATE SET ledger_ref = excluded.ledger_ref, key_id = excluded.key_id, "
                 "csrf = excluded.csrf, created_at = excluded.created_at, seen_at = excluded.seen_at",
                 (row["digest"], row["ledger_ref"], row["key_id"], row["csrf"], row["created_at"], row["seen_at"]))


def get(conn: sqlite3.Connection, digest: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM console_sessions WHERE digest = ?", (digest,)).fetchone()
    return None if row is None else dict(row)


def touch(conn: sqlite3.Connection, digest: str, seen: float) -> None:
    conn.execute("UPDATE console_sessions SET seen_at = ? WHERE digest = ? AND seen_at < ?", (seen, digest, seen))


def delete(conn: sqlite3.Connection, digests: list[str]) -> int:
    n = 0
    for d in digests:
        n += conn.execute("DELETE FROM console_sessions WHERE digest = ?", (d,)).rowcount
    return n


def ended(conn: sqlite3.Connection, now: float, idle_s: float, max_s: float) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        f"SELECT {COLUMNS} FROM console_sessions WHERE created_at <= ? OR seen_at <= ?",
        (now - max_s, now - idle_s))]


def beyond(conn: sqlite3.Connection, keep: int) -> list[dict[str, Any]]:
    """The least recently used rows past the newest ``keep``."""
    return [dict(r) for r in conn.execute(
        f"SELECT {COLUMNS} FROM console_sessions ORDER BY seen_at DESC LIMIT 1000000000 OFFSET ?", (keep,))]
