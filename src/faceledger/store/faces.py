"""Face rows, each carrying its 128-d descriptor in the same row, sealed.

A face and its vector are one row, so they are written and deleted together
and a crash can never leave one without the other. The vector is stored
encrypted under the master key and bound to its face id (see
:mod:`faceledger.store.sealing`); it is decrypted only when read with its
row. Functions take a ``SqlConnection`` (the caller's transaction for
writes) and, where vectors pass, the :class:`Sealer`. This module must not
touch the in-memory vector index or the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from faceledger.errors import InvalidParameterError, ResourceAlreadyExistsError
from faceledger.store import collections, dialect
from faceledger.store.db import chunks
from faceledger.store.dialect import INTEGRITY_ERRORS
from faceledger.store.protocols import SqlConnection, SqlRow
from faceledger.store.rows import (
    FACE_COLUMNS,
    blob_to_vector,
    blobs_to_matrix,
    check_limit,
    check_uuid,
    dumps,
    face_row,
    vector_to_blob,
)
from faceledger.store.schema import VECTOR_BYTES, VECTOR_DIM
from faceledger.store.sealing import Sealer

_BBOX_KEYS = ("Width", "Height", "Left", "Top")


def _vector_column(conn: SqlConnection) -> str:
    """SQLite keeps the sealed blob ``vector``; PostgreSQL the plaintext pgvector ``embedding`` pgvector searches."""
    return "embedding" if dialect.is_postgres(conn) else "vector"


def _vector_param(conn: SqlConnection, vector: Any, face_id: str, sealer: Sealer) -> Any:
    blob = vector_to_blob(vector)  # checks shape and finiteness on both engines
    if dialect.is_postgres(conn):
        return blob_to_vector(blob)
    return sealer.seal_vector(blob, face_id)


def _embedding(value: Any) -> np.ndarray:
    """A pgvector value (the adapter's ``Vector``, or an array) as float32."""
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def _read_vector(row: SqlRow, sealer: Sealer) -> np.ndarray:
    if "embedding" in row.keys():
        return _embedding(row["embedding"])
    return blob_to_vector(sealer.open_vector(row["vector"], row["face_id"]))


def _insert_params(conn: SqlConnection, collection_id: str, face: dict[str, Any], sealer: Sealer
                   ) -> tuple[Any, ...]:
    if face.get("user_id") is not None:
        raise InvalidParameterError("add faces without user_id, then call associate_faces")
    if "vector" not in face:
        raise InvalidParameterError("every face needs its 'vector' (float32, shape (128,))")
    bbox = face.get("bbox")
    if not isinstance(bbox, dict) or any(k not in bbox for k in _BBOX_KEYS):
        raise InvalidParameterError(f"bbox must be a dict with keys {', '.join(_BBOX_KEYS)}")
    face_id = check_uuid(face.get("face_id", ""), "face_id")
    return (
        face_id,
        collection_id,
        check_uuid(face.get("image_id", ""), "image_id"),
        face.get("external_image_id"),
        dumps({k: float(bbox[k]) for k in _BBOX_KEYS}),
        float(face.get("confidence", 0.0)),
        dumps(face.get("extra") or {}),
        face.get("image_sha256"),
        float(face.get("created_at") or time.time()),
        _vector_param(conn, face["vector"], face_id, sealer),
    )


def add(conn: SqlConnection, collection_id: str, faces: list[dict[str, Any]], sealer: Sealer) -> None:
    collections.require(conn, collection_id)
    params = [_insert_params(conn, collection_id, face, sealer) for face in faces]
    try:
        conn.executemany(
            "INSERT INTO faces(face_id, collection_id, image_id, external_image_id, bbox, "
            f"confidence, extra, image_sha256, created_at, {_vector_column(conn)}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
    except INTEGRITY_ERRORS as exc:
        raise ResourceAlreadyExistsError(f"a face id in this batch already exists: {exc}") from exc


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _row(row: SqlRow, sealer: Sealer | None) -> dict[str, Any]:
    """A face dict; with its plaintext vector when ``sealer`` is given (the row then has one)."""
    face = face_row(row)
    if sealer is not None:
        face["vector"] = _read_vector(row, sealer)
    return face


def get(
    conn: SqlConnection,
    collection_id: str,
    face_ids: Iterable[str],
    sealer: Sealer | None = None,
) -> list[dict[str, Any]]:
    """The faces that exist, in the order asked for (duplicates dropped); vectors with a ``sealer``."""
    collections.require(conn, collection_id)
    wanted = _unique(face_ids)
    cols = FACE_COLUMNS + (f", {_vector_column(conn)}" if sealer else "")
    found: dict[str, dict[str, Any]] = {}
    for part in chunks(wanted):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT {cols} FROM faces WHERE collection_id = ? AND face_id IN ({marks})",
            (collection_id, *part),
        ).fetchall()
        found.update((r["face_id"], _row(r, sealer)) for r in rows)
    return [found[f] for f in wanted if f in found]


def list_page(
    conn: SqlConnection,
    collection_id: str,
    after: str | None,
    limit: int,
    user_id: str | None = None,
    face_ids: list[str] | None = None,
    sealer: Sealer | None = None,
) -> list[dict[str, Any]]:
    """Faces ordered by face_id, strictly after ``after``; vectors with a ``sealer``."""
    collections.require(conn, collection_id)
    check_limit(limit)
    if face_ids is not None:
        faces = [f for f in get(conn, collection_id, face_ids, sealer)
                 if f["face_id"] > (after or "") and (user_id is None or f["user_id"] == user_id)]
        return sorted(faces, key=lambda f: f["face_id"])[:limit]
    cols = FACE_COLUMNS + (f", {_vector_column(conn)}" if sealer else "")
    sql = f"SELECT {cols} FROM faces WHERE collection_id = ? AND face_id > ?"
    params: list[Any] = [collection_id, after or ""]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    sql += " ORDER BY face_id LIMIT ?"
    params.append(limit)
    return [_row(r, sealer) for r in conn.execute(sql, params).fetchall()]


def delete(
    conn: SqlConnection,
    collection_id: str,
    face_ids: Iterable[str],
    keep_associated: bool = False,
) -> list[str]:
    """Delete faces (vectors go with their rows); returns the ids actually deleted."""
    collections.require(conn, collection_id)
    wanted = _unique(face_ids)
    deleted: set[str] = set()
    extra = " AND user_id IS NULL" if keep_associated else ""
    for part in chunks(wanted):
        marks = ",".join("?" * len(part))
        where = f"WHERE collection_id = ? AND face_id IN ({marks}){extra}"
        params = (collection_id, *part)
        deleted.update(r[0] for r in conn.execute(f"SELECT face_id FROM faces {where}", params))
        conn.execute(f"DELETE FROM faces {where}", params)
    return [f for f in wanted if f in deleted]


def iter_vectors(conn: SqlConnection, collection_id: str, sealer: Sealer) -> tuple[list[str], np.ndarray]:
    """All face ids of a collection (by face_id) and their decrypted ``(N, 128)`` float32 matrix."""
    collections.require(conn, collection_id)
    ids: list[str] = []
    blobs: list[bytes] = []
    cursor = conn.execute(
        f"SELECT face_id, {_vector_column(conn)} FROM faces WHERE collection_id = ? ORDER BY face_id",
        (collection_id,),
    )
    if dialect.is_postgres(conn):
        rows = [(face_id, _embedding(vec)) for face_id, vec in cursor]
        ids = [r[0] for r in rows]
        return ids, (np.stack([r[1] for r in rows]) if rows else np.zeros((0, VECTOR_DIM), dtype=np.float32))
    for face_id, blob in cursor:
        ids.append(face_id)
        blobs.append(sealer.open_vector(blob, face_id))
    return ids, blobs_to_matrix(blobs)


def find_by_image_hash(
    conn: SqlConnection, collection_id: str, image_sha256: str
) -> list[dict[str, Any]]:
    collections.require(conn, collection_id)
    rows = conn.execute(
        f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ? AND image_sha256 = ? "
        "ORDER BY face_id",
        (collection_id, image_sha256),
    ).fetchall()
    return [face_row(r) for r in rows]


def created_before(conn: SqlConnection, collection_id: str, before: float) -> list[str]:
    """Ids of faces enrolled before ``before`` (epoch seconds): retention candidates."""
    rows = conn.execute(
        "SELECT face_id FROM faces WHERE collection_id = ? AND created_at < ? ORDER BY face_id",
        (collection_id, before),
    ).fetchall()
    return [r[0] for r in rows]


def with_consent(conn: SqlConnection, consent_id: str) -> list[tuple[str, str]]:
    """(collection_id, face_id) of every face enrolled under ``consent_id``."""
    rows = conn.execute(
        f"SELECT collection_id, face_id FROM faces WHERE {dialect.json_field(conn, 'extra', 'consent_id')} = ? "
        "ORDER BY collection_id, face_id",
        (consent_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def with_consents(conn: SqlConnection, consent_ids: list[str]) -> list[tuple[str, str, str]]:
    """(collection_id, face_id, consent_id) of every face enrolled under one of ``consent_ids``, in one scan."""
    if not consent_ids:
        return []
    wanted = sorted(set(consent_ids))
    if dialect.is_postgres(conn):
        consent = dialect.json_field(conn, "extra", "consent_id")
        rows = conn.execute(
            f"SELECT collection_id, face_id, {consent} AS consent FROM faces WHERE {consent} = ANY(?) "
            "ORDER BY consent, collection_id, face_id", (wanted,)).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
    rows = conn.execute(
        "SELECT collection_id, face_id, json_extract(extra, '$.consent_id') AS consent FROM faces "
        "WHERE consent IN (SELECT value FROM json_each(?)) ORDER BY consent, collection_id, face_id",
        (dumps(wanted),),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def seal_plaintext(conn: SqlConnection, sealer: Sealer, after_rowid: int, limit: int) -> int:
    """Seal up to ``limit`` legacy plaintext vectors after ``after_rowid``; returns the last rowid done (0: none)."""
    rows = conn.execute(
        "SELECT rowid, face_id, vector FROM faces WHERE rowid > ? AND length(vector) = ? ORDER BY rowid LIMIT ?",
        (after_rowid, VECTOR_BYTES, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE faces SET vector = ? WHERE rowid = ?",
        [(sealer.seal_vector(r["vector"], r["face_id"]), r["rowid"]) for r in rows],
    )
    return int(rows[-1]["rowid"]) if rows else 0


def plaintext_count(conn: SqlConnection) -> int:
    """How many vectors are still stored unsealed (only a catalog being upgraded has any).

    Always 0 on PostgreSQL: its ``embedding`` column is plaintext by design (docs/scale-out.md, "Store").
    """
    if dialect.is_postgres(conn):
        return 0
    row = conn.execute("SELECT COUNT(*) FROM faces WHERE length(vector) = ?", (VECTOR_BYTES,)).fetchone()
    return int(row[0])
