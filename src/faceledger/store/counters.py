"""A collection's face and user counters on PostgreSQL, kept by the writers (SQLite's triggers keep them there).

Citus refuses triggers on distributed tables (faces, users) unless
``citus.enable_unsafe_triggers`` is on, so on PostgreSQL every statement that adds or
removes face or user rows is followed, in the same transaction, by one ``UPDATE`` of the
collection's row by the number of rows the statement changed (co-located with the
rows: the same shard on Citus). The row lock it takes serialises writers of one
collection exactly as the trigger's did. Deleting a collection drops its row, so
nothing is counted then. The startup check (store/pg_integrity.py) compares the
counters with the rows.
"""

from __future__ import annotations

from faceledger.store import dialect
from faceledger.store.protocols import SqlConnection

_COLUMNS = ("face_count", "user_count")


def bump(conn: SqlConnection, collection_id: str, column: str, delta: int) -> None:
    """Add ``delta`` to ``column`` of the collection (PostgreSQL only; a no-op for 0 and on SQLite)."""
    if column not in _COLUMNS:
        raise ValueError(f"not a collection counter: {column!r}")
    if delta and dialect.is_postgres(conn):
        conn.execute(f"UPDATE collections SET {column} = {column} + ? WHERE collection_id = ?",
                     (int(delta), collection_id))
