"""Small key-value tables: service state and idempotency records.

``state`` holds JSON values by name (the halt switch, the master-key
fingerprint). ``idempotency`` remembers the response to a request made with a
ClientRequestToken so a retry returns the same answer. This module must not
decide what to do with a replay; the service does.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from faceledger.errors import IdempotentParameterMismatchError
from faceledger.store.protocols import SqlConnection
from faceledger.store.rows import dumps, loads


def get_state(conn: SqlConnection, name: str) -> Any:
    row = conn.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
    return None if row is None else loads(row[0])


def set_state(conn: SqlConnection, name: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO state(name, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (name, dumps(value), time.time()),
    )


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request's parameters."""
    return hashlib.sha256(dumps(params).encode()).hexdigest()


def idempotent_get(
    conn: SqlConnection, operation: str, token: str
) -> tuple[str, dict[str, Any]] | None:
    row = conn.execute(
        "SELECT params_hash, response FROM idempotency WHERE operation = ? AND token = ?",
        (operation, token),
    ).fetchone()
    return None if row is None else (row[0], loads(row[1]))


def idempotent_put(
    conn: SqlConnection,
    operation: str,
    token: str,
    params_hash: str,
    response: dict[str, Any],
) -> None:
    """Record a response; a second put with other parameters is a mismatch.

    Insert-or-nothing, then compare: a put racing another process's for the same token
    (PostgreSQL) waits for it and compares, instead of failing on the primary key.
    """
    conn.execute(
        "INSERT INTO idempotency(operation, token, params_hash, response, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (operation, token, params_hash, dumps(response), time.time()),
    )
    existing = idempotent_get(conn, operation, token)
    if existing is not None and existing[0] != params_hash:
        raise IdempotentParameterMismatchError(
            f"ClientRequestToken {token!r} was already used for {operation} with "
            "different parameters; use a new token"
        )


def purge_idempotency(conn: SqlConnection, older_than: float, token_prefix: str = "") -> int:
    """Forget tokens (starting with ``token_prefix``) recorded before ``older_than`` (epoch seconds)."""
    cur = conn.execute(
        "DELETE FROM idempotency WHERE created_at < ? AND substr(token, 1, ?) = ?",
        (older_than, len(token_prefix), token_prefix),
    )
    return cur.rowcount
