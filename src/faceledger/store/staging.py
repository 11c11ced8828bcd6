"""Vectors staged for a migration in place: a collection's faces re-described by another pack.

Rows are sealed like face vectors (bound to the face id) and checked against
the target ``dim``. :func:`swap` replaces every face vector of the collection
by its staged one and re-pins the collection, inside the caller's transaction,
and refuses unless every face has one: a collection is never left holding
vectors of two packs. This module must not touch the index or the ledger.
"""

from __future__ import annotations

from typing import Any

from faceledger.errors import ConflictError
from faceledger.store import collections, dialect, faces
from faceledger.store.protocols import SqlConnection
from faceledger.store.sealing import Sealer


def stage(conn: SqlConnection, sealer: Sealer, collection_id: str, model_version: str, dim: int,
          vectors: list[tuple[str, Any, str]], at: float) -> None:
    """Stage ``(face_id, vector, source)`` rows for ``model_version`` (a face staged again is replaced)."""
    collections.require(conn, collection_id)
    col = faces.vector_column(conn)  # sealed blob on SQLite, plaintext pgvector on PostgreSQL
    rows = [(fid, collection_id, model_version, faces.vector_param(conn, v, fid, sealer, dim), source, at,
             fid, collection_id) for fid, v, source in vectors]
    # delete then insert: portable where INSERT OR REPLACE is not, and a face staged again is replaced
    conn.executemany("DELETE FROM staged_vectors WHERE face_id = ? AND collection_id = ?",
                     [(fid, collection_id) for fid, _, _ in vectors])
    conn.executemany(
        f"INSERT INTO staged_vectors(face_id, collection_id, model_version, {col}, source, staged_at) "
        "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM faces WHERE face_id = ? AND collection_id = ?)",
        rows)


def pending(conn: SqlConnection, collection_id: str, model_version: str, limit: int) -> list[str]:
    """Face ids of the collection with no vector staged for ``model_version`` yet (by face id)."""
    rows = conn.execute(
        "SELECT f.face_id FROM faces f LEFT JOIN staged_vectors s ON s.face_id = f.face_id "
        "AND s.collection_id = f.collection_id AND s.model_version = ? WHERE f.collection_id = ? AND s.face_id IS NULL ORDER BY f.face_id LIMIT ?",
        (model_version, collection_id, limit)).fetchall()
    return [r[0] for r in rows]


def discard(conn: SqlConnection, collection_id: str, other_than: str | None = None) -> int:
    """Drop the collection's staged vectors (those of another target than ``other_than``, when given)."""
    if other_than is None:
        cur = conn.execute("DELETE FROM staged_vectors WHERE collection_id = ?", (collection_id,))
    else:
        cur = conn.execute("DELETE FROM staged_vectors WHERE collection_id = ? AND model_version != ?",
                           (collection_id, other_than))
    return cur.rowcount


def swap(conn: SqlConnection, collection_id: str, model_version: str, dim: int, metric: str) -> dict[str, int]:
    """Every face's vector replaced by its staged one, the collection re-pinned; sources counted.

    ConflictError (nothing changed) if a face of the collection has no staged vector.
    """
    missing = pending(conn, collection_id, model_version, 1)
    if missing:
        raise ConflictError(f"face {missing[0]} of {collection_id} has no vector for {model_version} yet; "
                            "run the migration again to stage it")
    sources = dict(conn.execute(
        "SELECT CASE WHEN source LIKE 'original:%' THEN 'original' ELSE source END, COUNT(*) FROM staged_vectors "
        "WHERE collection_id = ? AND model_version = ? GROUP BY 1", (collection_id, model_version)).fetchall())
    col = faces.vector_column(conn)
    dialect.vectors_unpinned(conn, collection_id)  # PostgreSQL: the old dim's check and HNSW index go
    conn.execute(
        f"UPDATE faces SET {col} = (SELECT s.{col} FROM staged_vectors s WHERE s.face_id = faces.face_id "
        "AND s.collection_id = faces.collection_id AND s.model_version = ?) WHERE collection_id = ?",
        (model_version, collection_id))
    collections.set_model(conn, collection_id, model_version, dim, metric)
    dialect.vectors_repinned(conn, collection_id, dim, metric)
    discard(conn, collection_id)
    return {str(k): int(v) for k, v in sources.items()}
