"""Consent records and human review decisions (tables ``consents``, ``reviews``, ``review_pending``).

Plain reads and writes; what a consent allows, when it lapses, and how many
reviewers confirm a candidate are the service's rules, not this module's.
"""

from __future__ import annotations

import uuid
from typing import Any

from faceledger.errors import ConflictError, ResourceNotFoundError
from faceledger.store.dialect import INTEGRITY_ERRORS
from faceledger.store.protocols import SqlConnection, SqlRow


def _consent(row: SqlRow | tuple) -> dict[str, Any]:
    keys = ("consent_id", "subject", "notice_text", "notice_version", "purpose", "term_days", "given_at",
            "withdrawn_at", "created_by")
    return dict(zip(keys, tuple(row), strict=True))


_CONSENT_COLUMNS = ("consent_id, subject, notice_text, notice_version, purpose, term_days, given_at, "
                    "withdrawn_at, created_by")


def create_consent(conn: SqlConnection, record: dict[str, Any]) -> dict[str, Any]:
    consent_id = record.get("consent_id") or str(uuid.uuid4())
    values = (consent_id, record["subject"], record["notice_text"], record["notice_version"], record["purpose"],
              record.get("term_days"), record["given_at"], None, record.get("created_by"))
    try:
        conn.execute(f"INSERT INTO consents ({_CONSENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", values)
    except INTEGRITY_ERRORS as exc:
        raise ConflictError(f"Consent {consent_id} already exists.") from exc
    return _consent(values)


def get_consent(conn: SqlConnection, consent_id: str) -> dict[str, Any]:
    row = conn.execute(f"SELECT {_CONSENT_COLUMNS} FROM consents WHERE consent_id = ?", (consent_id,)).fetchone()
    if row is None:
        raise ResourceNotFoundError(f"No consent record {consent_id}.")
    return _consent(row)


def list_consents(conn: SqlConnection, subject: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {_CONSENT_COLUMNS} FROM consents"
    rows = conn.execute(sql + (" WHERE subject = ?" if subject else "") + " ORDER BY given_at, consent_id",
                        (subject,) if subject else ()).fetchall()
    return [_consent(r) for r in rows]


def withdraw_consent(conn: SqlConnection, consent_id: str, at: float) -> dict[str, Any]:
    current = get_consent(conn, consent_id)
    if current["withdrawn_at"] is not None:
        raise ConflictError(f"Consent {consent_id} was already withdrawn.")
    conn.execute("UPDATE consents SET withdrawn_at = ? WHERE consent_id = ?", (at, consent_id))
    current["withdrawn_at"] = at
    return current


def add_review(conn: SqlConnection, search_seq: int, candidate: str, reviewer: str, decision: str,
               reason: str, at: float) -> None:
    try:
        conn.execute("INSERT INTO reviews (search_seq, candidate, reviewer, decision, reason, at) "
                     "VALUES (?,?,?,?,?,?)", (search_seq, candidate, reviewer, decision, reason, at))
    except INTEGRITY_ERRORS as exc:
        raise ConflictError(f"Reviewer {reviewer} already decided on {candidate} of search {search_seq}.") from exc


def reviews_for(conn: SqlConnection, search_seq: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT candidate, reviewer, decision, reason, at FROM reviews WHERE search_seq = ? "
                        "ORDER BY at", (search_seq,)).fetchall()
    return [dict(zip(("candidate", "reviewer", "decision", "reason", "at"), tuple(r), strict=True)) for r in rows]


def all_reviews(conn: SqlConnection, since: float | None = None, until: float | None = None) -> list[dict]:
    rows = conn.execute("SELECT search_seq, candidate, reviewer, decision, reason, at FROM reviews "
                        "WHERE at >= ? AND at <= ? ORDER BY at",
                        (since or 0.0, until or 1e18)).fetchall()
    keys = ("search_seq", "candidate", "reviewer", "decision", "reason", "at")
    return [dict(zip(keys, tuple(r), strict=True)) for r in rows]


def add_pending(conn: SqlConnection, search_seq: int, collection_id: str | None) -> None:
    conn.execute("INSERT INTO review_pending (search_seq, collection_id) VALUES (?,?) ON CONFLICT DO NOTHING",
                 (search_seq, collection_id))


def pending(conn: SqlConnection, collection_id: str | None, after_seq: int, limit: int) -> list[int]:
    """Search seqs in the review index after ``after_seq``, oldest first (one collection's, if given)."""
    if collection_id is None:
        rows = conn.execute("SELECT search_seq FROM review_pending WHERE search_seq > ? ORDER BY search_seq "
                            "LIMIT ?", (after_seq, limit)).fetchall()
    else:
        rows = conn.execute("SELECT search_seq FROM review_pending WHERE collection_id = ? AND search_seq > ? "
                            "ORDER BY search_seq LIMIT ?", (collection_id, after_seq, limit)).fetchall()
    return [int(r[0]) for r in rows]


def drop_pending(conn: SqlConnection, search_seqs: list[int]) -> None:
    conn.executemany("DELETE FROM review_pending WHERE search_seq = ?", [(s,) for s in search_seqs])
