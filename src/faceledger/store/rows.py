"""Conversions between Python values and catalog columns.

Vectors: float32, shape ``(128,)``, encoded little-endian as 512 bytes (which
the store then seals; see :mod:`faceledger.store.sealing`).
JSON columns are written canonically (sorted keys, no spaces). This module
holds no SQL and no business rules.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np

from faceledger.errors import InvalidParameterError
from faceledger.store.protocols import SqlRow
from faceledger.store.schema import VECTOR_DIM

_LE_F32 = np.dtype("<f4")


def dumps(value: Any) -> str:
    """Canonical JSON: sorted keys, compact separators, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def new_id() -> str:
    """A fresh lowercase uuid4, the form of face, image and user ids."""
    return str(uuid.uuid4())


def check_uuid(value: str, what: str) -> str:
    try:
        ok = str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise InvalidParameterError(f"{what} must be a lowercase UUID, got {value!r}")
    return value


def vector_to_blob(vector: Any) -> bytes:
    """Validate one descriptor and encode it as 512 little-endian float32 bytes."""
    arr = np.asarray(vector)
    if arr.shape != (VECTOR_DIM,):
        raise InvalidParameterError(f"a face vector must have shape ({VECTOR_DIM},), got {arr.shape}")
    arr = arr.astype(_LE_F32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError("a face vector must be finite (no NaN or infinity)")
    return arr.tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=_LE_F32).astype(np.float32)


def blobs_to_matrix(blobs: list[bytes]) -> np.ndarray:
    """Stack BLOBs into a contiguous ``(N, 128)`` float32 matrix."""
    if not blobs:
        return np.zeros((0, VECTOR_DIM), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype=_LE_F32)
    return flat.reshape(len(blobs), VECTOR_DIM).astype(np.float32, copy=False)


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidParameterError(f"limit must be a positive integer, got {limit!r}")
    return limit


def check_tags(tags: dict[str, str] | None) -> dict[str, str]:
    tags = dict(tags or {})
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParameterError("tags must map strings to strings")
    return tags


def collection_row(row: SqlRow) -> dict[str, Any]:
    return {
        "collection_id": row["collection_id"],
        "model_version": row["model_version"],
        "created_at": row["created_at"],
        "tags": loads(row["tags"]),
        "face_count": row["face_count"],
        "user_count": row["user_count"],
    }


FACE_COLUMNS = (
    "face_id, collection_id, image_id, external_image_id, bbox, confidence, "
    "extra, user_id, image_sha256, created_at"
)


def face_row(row: SqlRow) -> dict[str, Any]:
    """The face's columns other than its vector (stored sealed; faces.py opens it)."""
    face = {
        "face_id": row["face_id"],
        "collection_id": row["collection_id"],
        "image_id": row["image_id"],
        "external_image_id": row["external_image_id"],
        "bbox": loads(row["bbox"]),
        "confidence": row["confidence"],
        "extra": loads(row["extra"]),
        "user_id": row["user_id"],
        "image_sha256": row["image_sha256"],
        "created_at": row["created_at"],
    }
    return face
