"""The face change log (schema v7): what other processes wrote, for an in-memory index to catch up.

Triggers on ``faces`` and ``collections`` append one row per face inserted
or deleted (and one per collection dropped, with ``face_id`` NULL) in the
writer's own transaction, so the log and the faces table never disagree.
Sequence numbers have no gaps and follow commit order: SQLite has one writer
at a time; on PostgreSQL the trigger takes the ledger's advisory lock (which
the transaction takes anyway for its ledger record) and numbers the row
``MAX(seq) + 1`` (store/pg_schema.py), not from a sequence, whose numbers
follow no commit order.
This module reads and prunes the log; it must not decide what a reader does
with it (store/synced_index.py does).
"""

from __future__ import annotations

import sqlite3

Change = tuple[int, str, str | None]  # (seq, collection_id, face_id or None for a dropped collection)


def head(conn: sqlite3.Connection) -> int:
    """The newest sequence number written (0 for none); never goes back (pruning keeps the newest row)."""
    row = conn.execute("SELECT MAX(seq) FROM face_changes").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def since(conn: sqlite3.Connection, after: int, limit: int) -> list[Change]:
    """Changes with ``seq > after``, oldest first, at most ``limit``."""
    rows = conn.execute(
        "SELECT seq, collection_id, face_id FROM face_changes WHERE seq > ? ORDER BY seq LIMIT ?",
        (after, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def present(conn: sqlite3.Connection, collection_id: str, face_ids: list[str]) -> set[str]:
    """Which of ``face_ids`` have a face row in the collection now."""
    out: set[str] = set()
    for start in range(0, len(face_ids), 500):
        part = face_ids[start : start + 500]
        marks = ",".join("?" * len(part))
        out.update(r[0] for r in conn.execute(
            f"SELECT face_id FROM faces WHERE collection_id = ? AND face_id IN ({marks})",
            (collection_id, *part)))
    return out


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Forget changes made before ``before`` (epoch seconds); a reader behind them reloads in full."""
    return conn.execute("DELETE FROM face_changes WHERE at < ? AND seq < (SELECT MAX(seq) FROM face_changes)",
                        (before,)).rowcount
