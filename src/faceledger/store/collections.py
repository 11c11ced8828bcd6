"""Collection rows: create, read, list, tag, delete.

Functions take a ``SqlConnection`` (the caller's transaction for
writes) and return plain dicts. Face and user counts are kept by triggers in
the SQLite schema and by the writers on PostgreSQL (store/counters.py). This module must not touch the vector index or the ledger.
"""

from __future__ import annotations

import re
from typing import Any

from faceledger.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceledger.store import dialect
from faceledger.store.dialect import INTEGRITY_ERRORS
from faceledger.store.protocols import SqlConnection
from faceledger.store.rows import check_limit, check_tags, collection_row, dumps
from faceledger.store.schema import MAX_VECTOR_DIM, VECTOR_DIM

_COLLECTION_ID = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")


def check_collection_id(collection_id: str) -> str:
    if not isinstance(collection_id, str) or not _COLLECTION_ID.match(collection_id):
        raise InvalidParameterError(
            f"collection id {collection_id!r} must be 1-255 characters of "
            "letters, digits, '_', '.' or '-'"
        )
    return collection_id


def create(
    conn: SqlConnection,
    collection_id: str,
    model_version: str,
    tags: dict[str, str] | None,
    created_at: float,
    dim: int = VECTOR_DIM,
    metric: str = "euclidean",
) -> dict[str, Any]:
    """A collection pinned to ``model_version``, whose vectors have ``dim`` floats compared by ``metric``."""
    check_collection_id(collection_id)
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_VECTOR_DIM:
        raise InvalidParameterError(f"a collection's vector dimension must be 1..{MAX_VECTOR_DIM}, got {dim!r}")
    if metric not in ("euclidean", "cosine"):
        raise InvalidParameterError(f"a collection's metric must be euclidean or cosine, got {metric!r}")
    try:
        conn.execute(
            "INSERT INTO collections(collection_id, model_version, created_at, tags, dim, metric) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (collection_id, model_version, float(created_at), dumps(check_tags(tags)), dim, metric),
        )
    except INTEGRITY_ERRORS as exc:
        raise ResourceAlreadyExistsError(
            f"collection {collection_id!r} already exists; pick another id or delete it first"
        ) from exc
    dialect.vectors_created(conn, collection_id, dim, metric)  # PostgreSQL: its faces partition
    return get(conn, collection_id)


def get(conn: SqlConnection, collection_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT * FROM collections WHERE collection_id = ?", (collection_id,)
    ).fetchone()
    if row is None:
        raise ResourceNotFoundError(
            f"collection {collection_id!r} does not exist; list collections to see the ids"
        )
    return collection_row(row)


def dim(conn: SqlConnection, collection_id: str) -> int:
    """The collection's vector dimension; ResourceNotFoundError unless it exists."""
    row = conn.execute("SELECT dim FROM collections WHERE collection_id = ?", (collection_id,)).fetchone()
    if row is None:
        raise ResourceNotFoundError(
            f"collection {collection_id!r} does not exist; list collections to see the ids"
        )
    return int(row[0])


def set_model(conn: SqlConnection, collection_id: str, model_version: str, dim: int, metric: str) -> None:
    """Re-pin a collection (a migration in place, in the transaction that swaps every vector)."""
    require(conn, collection_id)
    conn.execute("UPDATE collections SET model_version = ?, dim = ?, metric = ? WHERE collection_id = ?",
                 (model_version, dim, metric, collection_id))


def require(conn: SqlConnection, collection_id: str) -> None:
    """Raise ResourceNotFoundError unless the collection exists."""
    row = conn.execute(
        "SELECT 1 FROM collections WHERE collection_id = ?", (collection_id,)
    ).fetchone()
    if row is None:
        raise ResourceNotFoundError(
            f"collection {collection_id!r} does not exist; list collections to see the ids"
        )


def list_page(conn: SqlConnection, after: str | None, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM collections WHERE collection_id > ? ORDER BY collection_id LIMIT ?",
        (after or "", check_limit(limit)),
    ).fetchall()
    return [collection_row(r) for r in rows]


def delete(conn: SqlConnection, collection_id: str) -> int:
    """Delete a collection with its faces (and their vectors) and users."""
    count = get(conn, collection_id)["face_count"]
    # Explicit deletes rather than relying on cascade alone, so the intent is visible.
    conn.execute("DELETE FROM faces WHERE collection_id = ?", (collection_id,))
    conn.execute("DELETE FROM users WHERE collection_id = ?", (collection_id,))
    conn.execute("DELETE FROM collections WHERE collection_id = ?", (collection_id,))
    dialect.vectors_dropped(conn, collection_id)
    return int(count)


def set_tags(conn: SqlConnection, collection_id: str, tags: dict[str, str]) -> dict[str, Any]:
    """Replace the collection's tags with ``tags``; returns the collection."""
    require(conn, collection_id)
    conn.execute(
        "UPDATE collections SET tags = ? WHERE collection_id = ?",
        (dumps(check_tags(tags)), collection_id),
    )
    return get(conn, collection_id)
