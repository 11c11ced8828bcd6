"""The audit ledger: append-only, hash-chained records in the catalog database.

Each record is written inside the caller's transaction, so a record exists if
and only if the change it describes committed. A record's ``hash`` is the
SHA-256 of the canonical JSON of all its other fields, ``prev_hash``
included, which chains it to the record before (genesis: 64 zeros). See
docs/ledger.md for the recipe and what :meth:`Ledger.verify` detects.

This module never updates or deletes a ledger row (SQLite triggers refuse it
too), and it does not decide which events exist; the service does.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceledger.store import dialect
from faceledger.store.db import Transaction
from faceledger.store.pg_schema import LEDGER_LOCK
from faceledger.store.protocols import CatalogStore
from faceledger.store.rows import dumps, loads

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("seq", "at", "principal", "operation", "collection_id", "details", "prev_hash")
_PAGE = 1000


def canonical(value: Any) -> str:
    """The JSON form hashed and exported: sorted keys, ``(',', ':')``, UTF-8."""
    return dumps(value)


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of every field except ``hash``."""
    body = {name: record[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a verification. Every record with ``seq < first_bad_seq`` is intact."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    head_hash: str = GENESIS_HASH


def _details(text: str) -> Any:
    # An unparseable details column is evidence, not a crash: it fails the hash check.
    try:
        return loads(text)
    # TypeError: a damaged page turned the text into NULL or a number; RecursionError: nesting too deep
    except (ValueError, TypeError, RecursionError):
        return {"unparseable_details": str(text)}


def _row_record(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "seq": row["seq"],
        "at": row["at"],
        "principal": row["principal"],
        "operation": row["operation"],
        "collection_id": row["collection_id"],
        "details": _details(row["details"]),
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


class Ledger:
    """Writer, reader and verifier of the ledger table of one catalog."""

    def __init__(self, catalog: CatalogStore) -> None:
        self._catalog = catalog

    def _conn(self) -> Any:
        return self._catalog.connection()

    def append(
        self,
        tx: Transaction,
        *,
        operation: str,
        principal: str | None,
        collection_id: str | None,
        details: dict[str, Any],
        at: float | None = None,
    ) -> dict[str, Any]:
        """Append one record in ``tx``; it commits or rolls back with the caller's change."""
        if not operation:
            raise ValueError("a ledger record needs an operation")
        conn = self.serialise(tx)
        head = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        record: dict[str, Any] = {
            "seq": 1 if head is None else head["seq"] + 1,
            "at": float(time.time() if at is None else at),
            "principal": principal,
            "operation": operation,
            "collection_id": collection_id,
            # Round-trip so the stored, returned and hashed forms are identical.
            "details": json.loads(canonical(details)),
            "prev_hash": GENESIS_HASH if head is None else head["hash"],
        }
        record["hash"] = record_hash(record)
        conn.execute(
            "INSERT INTO ledger(seq, at, principal, operation, collection_id, details, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record["seq"], record["at"], principal, operation, collection_id,
             canonical(record["details"]), record["prev_hash"], record["hash"]),
        )
        return record

    def serialise(self, tx: Transaction) -> Any:
        """Hold the ledger for ``tx`` until it ends: what it reads of the ledger stays the latest.

        Several processes append to one PostgreSQL ledger: one at a time reads the head
        (``pg_advisory_xact_lock``, re-entrant within the transaction). SQLite's ``BEGIN
        IMMEDIATE`` already holds the one write lock, so there it is a no-op. Returns the connection.
        """
        conn = self._catalog.write_connection(tx)
        if dialect.is_postgres(conn):
            conn.execute("SELECT pg_advisory_xact_lock(?)", (LEDGER_LOCK,))
        return conn

    def head(self) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else _row_record(row)

    def latest(self, operation: str) -> dict[str, Any] | None:
        """The most recent record of ``operation`` (seen from this thread, open transaction included)."""
        row = self._conn().execute("SELECT * FROM ledger WHERE operation = ? ORDER BY seq DESC LIMIT 1",
                                   (operation,)).fetchone()
        return None if row is None else _row_record(row)

    def latest_seq(self, operation: str) -> int:
        """The seq of the most recent record of ``operation`` (0: none); read from the index alone."""
        row = self._conn().execute("SELECT MAX(seq) FROM ledger WHERE operation = ?", (operation,)).fetchone()
        return int(row[0] or 0)

    def hashes_after(self, seq: int) -> list[tuple[int, str]]:
        """``(seq, hash)`` of every record after ``seq``, in order."""
        rows = self._conn().execute("SELECT seq, hash FROM ledger WHERE seq > ? ORDER BY seq", (seq,))
        return [(int(r["seq"]), str(r["hash"])) for r in rows]

    def records(
        self,
        after_seq: int = 0,
        limit: int = 100,
        operation: str | None = None,
        principal: str | None = None,
        collection_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[dict[str, Any]]:
        """Records with ``seq > after_seq`` matching every given filter, by seq.

        ``since`` is inclusive and ``until`` exclusive (epoch seconds).
        """
        clauses: list[str] = ["seq > ?"]
        params: list[Any] = [after_seq]
        for column, value in (("operation", operation), ("principal", principal),
                              ("collection_id", collection_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("at < ?")
            params.append(until)
        sql = f"SELECT * FROM ledger WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        rows = self._conn().execute(sql, (*params, limit)).fetchall()
        return [_row_record(r) for r in rows]

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Every record in seq order, read page by page."""
        after = 0
        while True:
            page = self.records(after_seq=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1]["seq"]

    def verify(
        self,
        records: Iterable[dict[str, Any]] | None = None,
        *,
        expected_head_hash: str | None = None,
    ) -> VerifyResult:
        """Check the chain from genesis: ``records`` in the order given, or the whole table.

        ``expected_head_hash`` (from a signed checkpoint or an earlier head)
        also catches the one thing a bare chain cannot: records cut off the end.
        """
        return verify_chain(self.iter_all() if records is None else records,
                            expected_head_hash=expected_head_hash)

    def export(self, path: str | Path) -> int:
        """Write every record as one canonical JSON line; returns the count."""
        count = 0
        with open(path, "w", encoding="utf-8") as fh:
            for record in self.iter_all():
                fh.write(canonical(record) + "\n")
                count += 1
        return count

    def verify_file(self, path: str | Path, *, expected_head_hash: str | None = None) -> VerifyResult:
        return verify_file(path, expected_head_hash=expected_head_hash)


def read_catalog_file(db_path: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of the catalog file at ``db_path``, read-only, by seq, without opening the catalog.

    For verification of a file that may be damaged: it needs no master key and runs no
    migration; a damaged page raises ``sqlite3.DatabaseError`` after the records before it.
    """
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        # Row by row, not fetchall: a record SQLite cannot decode stops the walk at that record.
        for row in conn.execute("SELECT * FROM ledger ORDER BY seq"):
            yield _row_record(row)
    finally:
        conn.close()


def read_postgres(url: str) -> Iterator[dict[str, Any]]:
    """Every record of the PostgreSQL catalog at ``url``, read-only, by seq, streamed (no master key needed)."""
    import psycopg

    from faceledger.store.pg_db import CONNECT_TIMEOUT_S, row_factory, unavailable

    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.read_only = True
            with conn.cursor(name="ledger_walk", row_factory=row_factory) as cur:  # server-side: streamed
                cur.execute("SELECT * FROM ledger ORDER BY seq")
                for row in cur:
                    yield _row_record(row)
    except psycopg.OperationalError as exc:
        raise unavailable(exc, url) from exc


def verify_file(path: str | Path, *, expected_head_hash: str | None = None) -> VerifyResult:
    """Verify an exported JSON-lines file (no database needed)."""
    with open(path, encoding="utf-8") as fh:
        return verify_chain(_read_lines(fh), expected_head_hash=expected_head_hash)


class Unreadable(dict[str, Any]):
    """Stands in for a line that is not a JSON record."""


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """The records of an exported file, unreadable lines kept as stand-ins that fail verification."""
    with open(path, encoding="utf-8") as fh:
        return list(_read_lines(fh))


def _read_lines(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than json can decode
            value = None
        yield value if isinstance(value, dict) else Unreadable(line=number)


_LINK = "link"


def _check(record: dict[str, Any], expected_seq: int, prev_hash: str) -> str | None:
    """Why ``record`` breaks the chain at ``expected_seq``, or None if it fits."""
    if isinstance(record, Unreadable):
        return f"line {record['line']} is not a JSON ledger record"
    missing = [f for f in (*HASHED_FIELDS, "hash") if f not in record]
    if missing:
        return f"record lacks field(s) {', '.join(missing)}"
    seq = record["seq"]
    if seq != expected_seq:
        if isinstance(seq, int) and seq > expected_seq:
            return f"expected seq {expected_seq}, found {seq}: record(s) missing"
        return f"expected seq {expected_seq}, found {seq!r}: records out of order or renumbered"
    try:
        actual = record_hash(record)
    except (TypeError, ValueError) as exc:
        return f"record cannot be hashed: {exc}"
    if actual != record["hash"]:
        return "hash does not match the record's contents: the record was edited"
    if record["prev_hash"] != prev_hash:
        return _LINK  # a self-consistent record that does not follow its predecessor
    return None


def verify_chain(
    records: Iterable[dict[str, Any]], *, expected_head_hash: str | None = None
) -> VerifyResult:
    """Walk records from seq 1, stopping at the first that breaks the chain."""
    prev_hash, checked, before = GENESIS_HASH, 0, GENESIS_HASH
    for record in records:
        reason = _check(record, checked + 1, prev_hash)
        if reason == _LINK and checked:
            # The previous record and this one disagree; either may be the altered one, so the
            # previous is the first that cannot be vouched for (every record before it is intact).
            return VerifyResult(False, checked - 1, checked,
                                f"seq {checked}: its hash is not the prev_hash record {checked + 1} holds: "
                                f"record {checked} was edited and re-hashed, or record {checked + 1} was "
                                "altered or put in place of another", before)
        if reason == _LINK:
            reason = "prev_hash is not the genesis hash: records before it were removed"
        if reason is not None:
            return VerifyResult(False, checked, checked + 1, f"seq {checked + 1}: {reason}",
                                prev_hash)
        before = prev_hash
        prev_hash, checked = record["hash"], checked + 1
    if expected_head_hash is not None and expected_head_hash != prev_hash:
        return VerifyResult(False, checked, checked + 1,
                            f"chain ends at seq {checked} but its head hash is not the expected "
                            "one: records were cut off the end or replaced", prev_hash)
    return VerifyResult(True, checked, None, f"{checked} record(s) intact", prev_hash)
