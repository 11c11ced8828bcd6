"""The seam between the two SQL engines the table modules run on: SQLite and PostgreSQL.

The table modules write portable SQL (``?`` placeholders, ``ON CONFLICT``) and
ask this module only where the engines differ: which one a connection speaks,
which exception means a constraint refused a row, and the few statements that
have no common form (JSON fields, the vector column). It holds no query logic.
"""

from __future__ import annotations

import sqlite3
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


def json_field(conn: Any, column: str, key: str) -> str:
    """SQL for the text of ``column``'s top-level JSON member ``key`` (``key`` is a constant)."""
    if not key.isidentifier():
        raise ValueError(f"not a JSON member name: {key!r}")
    if is_postgres(conn):
        return f"(({column})::jsonb ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"
