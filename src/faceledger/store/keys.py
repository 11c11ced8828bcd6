"""API keys: the SigV4 principals, with a role and per-key defaults.

Access key ids look like AWS's (``AKIA`` + 16 upper-case letters/digits);
secrets are 40 characters and are stored sealed (see
:mod:`faceledger.store.sealing`), never in plaintext. Keys are revoked, not
deleted, so the ledger's principals stay resolvable. This module must not
check signatures; that is the API layer's job.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from faceledger.errors import InvalidParameterError, ResourceNotFoundError
from faceledger.store.dialect import INTEGRITY_ERRORS
from faceledger.store.protocols import SqlConnection, SqlRow
from faceledger.store.rows import dumps, loads
from faceledger.store.sealing import Sealer

ROLES = ("admin", "enroller", "searcher", "reviewer", "auditor")
_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def _new_access_key_id() -> str:
    return "AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def _new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def create(
    conn: SqlConnection,
    sealer: Sealer,
    role: str,
    label: str | None,
    defaults: dict[str, Any] | None,
) -> tuple[str, str]:
    if role not in ROLES:
        raise InvalidParameterError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    secret = _new_secret()
    for _ in range(5):
        key_id = _new_access_key_id()
        try:
            conn.execute(
                "INSERT INTO api_keys(access_key_id, secret_enc, role, label, defaults, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, sealer.seal(secret, key_id), role, label, dumps(defaults or {}),
                 time.time()),
            )
            return key_id, secret
        except INTEGRITY_ERRORS:
            continue  # an id collision: 36**16 makes this all but impossible
    raise RuntimeError("could not allocate a unique access key id")


def _key_row(row: SqlRow) -> dict[str, Any]:
    return {
        "access_key_id": row["access_key_id"],
        "role": row["role"],
        "label": row["label"],
        "defaults": loads(row["defaults"]),
        "created_at": row["created_at"],
        "revoked": bool(row["revoked"]),
        "revoked_at": row["revoked_at"],
    }


def get(conn: SqlConnection, sealer: Sealer, access_key_id: str) -> dict[str, Any] | None:
    """The key with its decrypted secret, or None if unknown."""
    row = conn.execute(
        "SELECT * FROM api_keys WHERE access_key_id = ?", (access_key_id,)
    ).fetchone()
    if row is None:
        return None
    key = _key_row(row)
    key["secret"] = sealer.open(row["secret_enc"], row["access_key_id"])
    return key


def list_all(conn: SqlConnection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at, access_key_id").fetchall()
    return [_key_row(r) for r in rows]


def count(conn: SqlConnection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])


def revoke(conn: SqlConnection, access_key_id: str) -> None:
    """Revoke a key (idempotent: the first revocation time is kept)."""
    cur = conn.execute(
        "UPDATE api_keys SET revoked = 1, revoked_at = COALESCE(revoked_at, ?) "
        "WHERE access_key_id = ?",
        (time.time(), access_key_id),
    )
    if cur.rowcount == 0:
        raise ResourceNotFoundError(f"access key {access_key_id!r} does not exist")
