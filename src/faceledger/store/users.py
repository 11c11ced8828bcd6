"""Users: Rekognition's named groups of faces within one collection.

A face belongs to at most one user; a user holds at most
:data:`MAX_FACES_PER_USER` faces. ``user_status`` is ``CREATED`` while a user
has no faces and ``ACTIVE`` once it has at least one (Rekognition reports
CREATED for a new user and ACTIVE after faces are associated; UPDATING and
CREATING never occur here because association is synchronous). Functions
take a ``SqlConnection``; this module must not touch the vector index.
"""

from __future__ import annotations

import re
from typing import Any

from faceledger.errors import (
    ConflictError,
    InvalidParameterError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
)
from faceledger.store import collections, faces
from faceledger.store.db import chunks
from faceledger.store.dialect import INTEGRITY_ERRORS
from faceledger.store.protocols import SqlConnection, SqlRow
from faceledger.store.rows import check_limit

MAX_FACES_PER_USER = 100
FACE_NOT_FOUND = "FACE_NOT_FOUND"
ASSOCIATED_TO_A_DIFFERENT_USER = "ASSOCIATED_TO_A_DIFFERENT_USER"

_USER_ID = re.compile(r"^[a-zA-Z0-9_.\-:]{1,128}$")

_SELECT_USER = (
    "SELECT u.user_id, u.created_at, "
    "(SELECT COUNT(*) FROM faces f WHERE f.collection_id = u.collection_id "
    " AND f.user_id = u.user_id) AS face_count "
    "FROM users u WHERE u.collection_id = ?"
)


def _user_row(row: SqlRow) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "user_status": "ACTIVE" if row["face_count"] else "CREATED",
        "face_count": row["face_count"],
        "created_at": row["created_at"],
    }


def create(conn: SqlConnection, collection_id: str, user_id: str, created_at: float) -> dict[str, Any]:
    collections.require(conn, collection_id)
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise InvalidParameterError(
            f"user id {user_id!r} must be 1-128 characters of letters, digits, '_', '.', '-' or ':'"
        )
    try:
        conn.execute(
            "INSERT INTO users(collection_id, user_id, created_at) VALUES (?, ?, ?)",
            (collection_id, user_id, float(created_at)),
        )
    except INTEGRITY_ERRORS as exc:
        raise ConflictError(
            f"user {user_id!r} already exists in collection {collection_id!r}"
        ) from exc
    return get(conn, collection_id, user_id)


def get(conn: SqlConnection, collection_id: str, user_id: str) -> dict[str, Any]:
    collections.require(conn, collection_id)
    row = conn.execute(_SELECT_USER + " AND u.user_id = ?", (collection_id, user_id)).fetchone()
    if row is None:
        raise ResourceNotFoundError(
            f"user {user_id!r} does not exist in collection {collection_id!r}; create it first"
        )
    return _user_row(row)


def list_page(
    conn: SqlConnection, collection_id: str, after: str | None, limit: int
) -> list[dict[str, Any]]:
    collections.require(conn, collection_id)
    rows = conn.execute(
        _SELECT_USER + " AND u.user_id > ? ORDER BY u.user_id LIMIT ?",
        (collection_id, after or "", check_limit(limit)),
    ).fetchall()
    return [_user_row(r) for r in rows]


def delete(conn: SqlConnection, collection_id: str, user_id: str) -> None:
    """Delete a user; its faces stay in the collection, unassociated."""
    get(conn, collection_id, user_id)
    conn.execute(
        "UPDATE faces SET user_id = NULL WHERE collection_id = ? AND user_id = ?",
        (collection_id, user_id),
    )
    conn.execute(
        "DELETE FROM users WHERE collection_id = ? AND user_id = ?", (collection_id, user_id)
    )


def face_ids(conn: SqlConnection, collection_id: str, user_id: str) -> list[str]:
    get(conn, collection_id, user_id)
    rows = conn.execute(
        "SELECT face_id FROM faces WHERE collection_id = ? AND user_id = ? ORDER BY face_id",
        (collection_id, user_id),
    ).fetchall()
    return [r[0] for r in rows]


def _classify(
    conn: SqlConnection, collection_id: str, user_id: str, wanted: list[str]
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Split requested faces into (already this user's, unassociated, failures)."""
    owners = {f["face_id"]: f["user_id"] for f in faces.get(conn, collection_id, wanted)}
    mine: list[str] = []
    free: list[str] = []
    failed: list[dict[str, Any]] = []
    for face_id in wanted:
        if face_id not in owners:
            failed.append({"FaceId": face_id, "Reasons": [FACE_NOT_FOUND]})
        elif owners[face_id] == user_id:
            mine.append(face_id)
        elif owners[face_id] is None:
            free.append(face_id)
        else:
            failed.append({"FaceId": face_id, "UserId": owners[face_id],
                           "Reasons": [ASSOCIATED_TO_A_DIFFERENT_USER]})
    return mine, free, failed


def _set_owner(
    conn: SqlConnection, collection_id: str, ids: list[str], owner: str | None
) -> None:
    for part in chunks(ids):
        marks = ",".join("?" * len(part))
        conn.execute(
            f"UPDATE faces SET user_id = ? WHERE collection_id = ? AND face_id IN ({marks})",
            (owner, collection_id, *part),
        )


def associate(
    conn: SqlConnection, collection_id: str, user_id: str, ids: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Associate faces with a user. Faces already theirs count as associated."""
    current = get(conn, collection_id, user_id)["face_count"]
    wanted = list(dict.fromkeys(ids))
    mine, free, failed = _classify(conn, collection_id, user_id, wanted)
    if current + len(free) > MAX_FACES_PER_USER:
        raise ServiceQuotaExceededError(
            f"user {user_id!r} has {current} faces; adding {len(free)} would exceed "
            f"the limit of {MAX_FACES_PER_USER}. Disassociate some faces first"
        )
    _set_owner(conn, collection_id, free, user_id)
    done = set(mine) | set(free)
    return [f for f in wanted if f in done], failed


def disassociate(
    conn: SqlConnection, collection_id: str, user_id: str, ids: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Remove faces from a user. A face with no user counts as disassociated."""
    get(conn, collection_id, user_id)
    wanted = list(dict.fromkeys(ids))
    mine, free, failed = _classify(conn, collection_id, user_id, wanted)
    _set_owner(conn, collection_id, mine, None)
    done = set(mine) | set(free)
    return [f for f in wanted if f in done], failed
