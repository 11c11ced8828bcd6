"""The seam between the two SQL engines the table modules run on: SQLite and PostgreSQL.

The table modules write portable SQL (``?`` placeholders, ``ON CONFLICT``) and
ask this module only where the engines differ: which one a connection speaks,
which exception means a constraint refused a row, and the few statements that
have no common form (JSON fields, the vector column). It holds no query logic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# A unique or foreign-key constraint refused the row (either engine).
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


def of(conn: Any) -> str:
    """The engine behind ``conn`` (an ``sqlite3.Connection``, or a PostgreSQL session of store/pg_db.py)."""
    return getattr(conn, "dialect", SQLITE)


def is_postgres(conn: Any) -> bool:
    return of(conn) == POSTGRESQL


# The vector column's table shape, in the catalog's transaction: one partition per collection on
# PostgreSQL (store/pg_vectors.py), nothing on SQLite (vectors are sealed blobs in one table).
def vectors_created(conn: Any, collection_id: str, dim: int, metric: str) -> None:
    """A new collection's partition and stats row (PostgreSQL)."""
    if is_postgres(conn):
        from faceledger.store import pg_vectors

        with _partition_busy(collection_id):
            pg_vectors.create_partition(conn.raw, collection_id, dim, metric)


def vectors_dropped(conn: Any, collection_id: str) -> None:
    """A deleted collection's partition (and HNSW index) and stats row go (PostgreSQL)."""
    if is_postgres(conn):
        from faceledger.store import pg_vectors

        with _partition_busy(collection_id):
            pg_vectors.drop_partition(conn.raw, collection_id)


@contextmanager
def _partition_busy(collection_id: str) -> Iterator[None]:
    """A partition change that waited too long for the faces table: 503 (retryable); the transaction rolls back."""
    try:
        yield
    except psycopg.errors.LockNotAvailable as exc:
        from faceledger.errors import StoreUnavailableError

        raise StoreUnavailableError(
            f"Collection {collection_id}: its faces partition could not be changed, a long transaction holds the "
            "faces table (an HNSW build, a big write); nothing was written. Retry.") from exc


def vectors_unpinned(conn: Any, collection_id: str) -> None:
    """Before a migration rewrites every vector: the HNSW index and the dimension check go (PostgreSQL)."""
    if is_postgres(conn):
        from faceledger.store import pg_vectors

        pg_vectors.unpin_partition(conn.raw, collection_id)


def vectors_repinned(conn: Any, collection_id: str, dim: int, metric: str) -> None:
    """After it: the new dimension checked on every row, the stats row re-pinned (PostgreSQL)."""
    if is_postgres(conn):
        from faceledger.store import pg_vectors

        pg_vectors.pin_partition(conn.raw, collection_id, dim, metric)


def json_field(conn: Any, column: str, key: str) -> str:
    """SQL for the text of ``column``'s top-level JSON member ``key`` (``key`` is a constant)."""
    if not key.isidentifier():
        raise ValueError(f"not a JSON member name: {key!r}")
    if is_postgres(conn):
        return f"(({column})::jsonb ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"
