"""Face rows, each carrying its 128-d descriptor in the same row.

A face and its vector are one row, so they are written and deleted together
and a crash can never leave one without the other. Functions take a
``sqlite3.Connection`` (the caller's transaction for writes). This module
must not touch the in-memory vector index or the ledger.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from faceledger.errors import InvalidParameterError, ResourceAlreadyExistsError
from faceledger.store import collections
from faceledger.store.db import chunks
from faceledger.store.rows import (
    FACE_COLUMNS,
    blobs_to_matrix,
    check_limit,
    check_uuid,
    dumps,
    face_row,
    vector_to_blob,
)

_BBOX_KEYS = ("Width", "Height", "Left", "Top")


def _insert_params(collection_id: str, face: dict[str, Any]) -> tuple[Any, ...]:
    if face.get("user_id") is not None:
        raise InvalidParameterError("add faces without user_id, then call associate_faces")
    if "vector" not in face:
        raise InvalidParameterError("every face needs its 'vector' (float32, shape (128,))")
    bbox = face.get("bbox")
    if not isinstance(bbox, dict) or any(k not in bbox for k in _BBOX_KEYS):
        raise InvalidParameterError(f"bbox must be a dict with keys {', '.join(_BBOX_KEYS)}")
    return (
        check_uuid(face.get("face_id", ""), "face_id"),
        collection_id,
        check_uuid(face.get("image_id", ""), "image_id"),
        face.get("external_image_id"),
        dumps({k: float(bbox[k]) for k in _BBOX_KEYS}),
        float(face.get("confidence", 0.0)),
        dumps(face.get("extra") or {}),
        face.get("image_sha256"),
        float(face.get("created_at") or time.time()),
        vector_to_blob(face["vector"]),
    )


def add(conn: sqlite3.Connection, collection_id: str, faces: list[dict[str, Any]]) -> None:
    collections.require(conn, collection_id)
    params = [_insert_params(collection_id, face) for face in faces]
    try:
        conn.executemany(
            "INSERT INTO faces(face_id, collection_id, image_id, external_image_id, bbox, "
            "confidence, extra, image_sha256, created_at, vector) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
    except sqlite3.IntegrityError as exc:
        raise ResourceAlreadyExistsError(f"a face id in this batch already exists: {exc}") from exc


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def get(
    conn: sqlite3.Connection,
    collection_id: str,
    face_ids: Iterable[str],
    with_vectors: bool = False,
) -> list[dict[str, Any]]:
    """The faces that exist, in the order asked for (duplicates dropped)."""
    collections.require(conn, collection_id)
    wanted = _unique(face_ids)
    cols = FACE_COLUMNS + (", vector" if with_vectors else "")
    found: dict[str, dict[str, Any]] = {}
    for part in chunks(wanted):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT {cols} FROM faces WHERE collection_id = ? AND face_id IN ({marks})",
            (collection_id, *part),
        ).fetchall()
        found.update((r["face_id"], face_row(r, with_vectors)) for r in rows)
    return [found[f] for f in wanted if f in found]


def list_page(
    conn: sqlite3.Connection,
    collection_id: str,
    after: str | None,
    limit: int,
    user_id: str | None = None,
    face_ids: list[str] | None = None,
    with_vectors: bool = False,
) -> list[dict[str, Any]]:
    """Faces ordered by face_id, strictly after ``after``."""
    collections.require(conn, collection_id)
    check_limit(limit)
    if face_ids is not None:
        faces = [f for f in get(conn, collection_id, face_ids, with_vectors)
                 if f["face_id"] > (after or "") and (user_id is None or f["user_id"] == user_id)]
        return sorted(faces, key=lambda f: f["face_id"])[:limit]
    cols = FACE_COLUMNS + (", vector" if with_vectors else "")
    sql = f"SELECT {cols} FROM faces WHERE collection_id = ? AND face_id > ?"
    params: list[Any] = [collection_id, after or ""]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    sql += " ORDER BY face_id LIMIT ?"
    params.append(limit)
    return [face_row(r, with_vectors) for r in conn.execute(sql, params).fetchall()]


def delete(
    conn: sqlite3.Connection,
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


def iter_vectors(conn: sqlite3.Connection, collection_id: str) -> tuple[list[str], np.ndarray]:
    """All face ids of a collection (by face_id) and their ``(N, 128)`` float32 matrix."""
    collections.require(conn, collection_id)
    ids: list[str] = []
    blobs: list[bytes] = []
    cursor = conn.execute(
        "SELECT face_id, vector FROM faces WHERE collection_id = ? ORDER BY face_id",
        (collection_id,),
    )
    for face_id, blob in cursor:
        ids.append(face_id)
        blobs.append(blob)
    return ids, blobs_to_matrix(blobs)


def find_by_image_hash(
    conn: sqlite3.Connection, collection_id: str, image_sha256: str
) -> list[dict[str, Any]]:
    collections.require(conn, collection_id)
    rows = conn.execute(
        f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ? AND image_sha256 = ? "
        "ORDER BY face_id",
        (collection_id, image_sha256),
    ).fetchall()
    return [face_row(r) for r in rows]


def created_before(conn: sqlite3.Connection, collection_id: str, before: float) -> list[str]:
    """Ids of faces enrolled before ``before`` (epoch seconds): retention candidates."""
    rows = conn.execute(
        "SELECT face_id FROM faces WHERE collection_id = ? AND created_at < ? ORDER BY face_id",
        (collection_id, before),
    ).fetchall()
    return [r[0] for r in rows]


def with_consent(conn: sqlite3.Connection, consent_id: str) -> list[tuple[str, str]]:
    """(collection_id, face_id) of every face enrolled under ``consent_id``."""
    rows = conn.execute(
        "SELECT collection_id, face_id FROM faces WHERE json_extract(extra, '$.consent_id') = ? "
        "ORDER BY collection_id, face_id",
        (consent_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]
