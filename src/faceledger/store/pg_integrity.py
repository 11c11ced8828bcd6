"""Is the PostgreSQL catalog sound? The startup check (cf. store/integrity.py for SQLite).

PostgreSQL has no ``PRAGMA quick_check``; what it offers instead is page
checksums (``initdb --data-checksums``: a damaged page fails when read) and the
``amcheck`` extension (B-tree invariants). This module checks, read-only:

- ``quick``: the schema version is one this faceledger knows; pgvector is
  installed; every collection's ``face_count``/``user_count`` equals its rows;
  the ledger's seqs are 1..N without gaps.
- ``full``: the above, and every catalog table read end to end (with page
  checksums on, a damaged page fails here), and, where ``amcheck`` is
  installed in the database, ``bt_index_check`` on every B-tree index.

A store that cannot be reached is not "damaged": that raises StoreUnavailableError.
"""

from __future__ import annotations

import psycopg

from faceledger.errors import IntegrityFailedError, InvalidParameterError
from faceledger.store.integrity import MAX_PROBLEMS, MODES
from faceledger.store.pg_db import CONNECT_TIMEOUT_S, redact, unavailable
from faceledger.store.pg_schema import SCHEMA_VERSION

TABLES = ("collections", "faces", "users", "idempotency", "api_keys", "state", "ledger", "consents",
          "reviews", "thumbnails", "probe_thumbnails", "review_pending")


def problems(url: str, mode: str = "full") -> list[str]:
    if mode not in MODES:
        raise InvalidParameterError(f"FACELEDGER_STARTUP_CHECK={mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "off":
        return []
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
            conn.execute("SET default_transaction_read_only = on")
            return _check(conn, mode)[:MAX_PROBLEMS]
    except psycopg.OperationalError as exc:
        raise unavailable(exc, url) from exc


def _check(conn: psycopg.Connection, mode: str) -> list[str]:  # type: ignore[type-arg]
    found: list[str] = []
    present = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not present or not present[0]:
        return []  # a new, empty database: the catalog creates its tables on open
    version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    if version is None or int(version[0]) != SCHEMA_VERSION:
        found.append(f"schema version {version[0] if version else None} (this faceledger: {SCHEMA_VERSION})")
        return found
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
        found.append("the pgvector extension is not installed in this database")
    for cid, kind, recorded, actual in conn.execute(
        "SELECT c.collection_id, 'face_count', c.face_count, (SELECT count(*) FROM faces f "
        " WHERE f.collection_id = c.collection_id) FROM collections c "
        "UNION ALL SELECT c.collection_id, 'user_count', c.user_count, (SELECT count(*) FROM users u "
        " WHERE u.collection_id = c.collection_id) FROM collections c"
    ):
        if recorded != actual:
            found.append(f"collection {cid!r}: {kind} {recorded} but {actual} rows")
    n, top = conn.execute("SELECT count(*), COALESCE(max(seq), 0) FROM ledger").fetchone() or (0, 0)
    if n != top:
        found.append(f"ledger holds {n} record(s) but its last seq is {top}: records are missing")
    if mode == "full":
        for table in TABLES:
            try:
                conn.execute(f"SELECT count(*) FROM (SELECT * FROM {table}) t")  # noqa: S608 - constant names
            except psycopg.DatabaseError as exc:
                found.append(f"table {table}: {exc}".splitlines()[0])
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone() is not None:
            for (index,) in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relkind = 'i' "
                "AND c.relnamespace = 'public'::regnamespace"
            ).fetchall():
                try:
                    conn.execute("SELECT bt_index_check(%s::regclass)", (index,))
                except psycopg.DatabaseError as exc:
                    found.append(f"index {index}: {exc}".splitlines()[0])
    return found


def refuse_damaged(url: str, mode: str) -> None:
    """Raise (exit 13) when the PostgreSQL catalog fails its check: a damaged catalog is not served."""
    found = problems(url, mode)
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        raise IntegrityFailedError(
            f"the PostgreSQL catalog at {redact(url)} fails its integrity check: {found[0]}{more}. Not serving "
            "a damaged catalog: restore it from a backup; `faceledger audit verify` names the last intact "
            "ledger record.")
