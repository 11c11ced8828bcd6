"""Copy a SQLite catalog into a PostgreSQL one (``faceledger store migrate``).

Table by table, in batches keyed by the target's primary key, one commit per
batch, each batch starting after the highest key the target already holds: an
interrupted run resumes where it stopped and a second run copies nothing. Rows
are copied as stored (sealed API-key secrets and thumbnails stay sealed under the
same master key), except face vectors, which are opened with the master key
because pgvector searches plaintext (docs/scale-out.md, "Store"). Collection
counters are copied as the source holds them (the target keeps no triggers: Citus). The
ledger goes last, in seq order, byte for byte, so the target verifies with the
source's head hash; a target whose ledger is not a prefix of the source's is
refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from faceledger.errors import IntegrityFailedError, InvalidParameterError
from faceledger.store import dialect
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger
from faceledger.store.rows import blob_to_vector

BATCH = 1000


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]  # the target's primary key: the copy's order and resume point
    columns: tuple[str, ...]
    resume: bool = True  # start after the target's highest key (False: the target may hold rows of its own)


# Parents before children (faces before thumbnails), the ledger last.
TABLES = (
    Table("state", ("name",), ("name", "value", "updated_at"), resume=False),  # the target recorded its key
    Table("api_keys", ("access_key_id",), ("access_key_id", "secret_enc", "role", "label", "defaults", "created_at",
                                           "revoked", "revoked_at")),
    # the counters as the source holds them: the copies below are raw INSERTs, which count nothing
    Table("collections", ("collection_id",), ("collection_id", "model_version", "created_at", "tags", "face_count",
                                              "user_count", "dim", "metric")),
    Table("users", ("collection_id", "user_id"), ("collection_id", "user_id", "created_at")),
    Table("faces", ("collection_id", "face_id"), ("collection_id", "face_id", "image_id", "external_image_id", "bbox",
                                                  "confidence", "extra", "user_id", "image_sha256", "created_at",
                                                  "vector")),
    Table("thumbnails", ("collection_id", "face_id"), ("collection_id", "face_id", "sealed", "created_at",
                                                       "expires_at")),
    Table("probe_thumbnails", ("collection_id", "search_seq"), ("collection_id", "search_seq", "sealed", "created_at",
                                                                "expires_at")),
    Table("idempotency", ("operation", "token"), ("operation", "token", "params_hash", "response", "created_at")),
    Table("consents", ("consent_id",), ("consent_id", "subject", "notice_text", "notice_version", "purpose",
                                        "term_days", "given_at", "withdrawn_at", "created_by")),
    Table("reviews", ("search_seq", "candidate", "reviewer"), ("search_seq", "candidate", "reviewer", "decision",
                                                               "reason", "at")),
    Table("review_pending", ("search_seq",), ("search_seq", "collection_id")),
)
LEDGER = Table("ledger", ("seq",), ("seq", "at", "principal", "operation", "collection_id", "details", "prev_hash",
                                    "hash"))


@dataclass
class Report:
    copied: dict[str, int] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: str = ""
    verified: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"Copied": dict(self.copied), "CopiedTotal": sum(self.copied.values()), "LedgerHeadSeq": self.head_seq,
                "LedgerHeadHash": self.head_hash, "Verified": self.verified}


def migrate(source: Catalog, target: Catalog, *, batch: int = BATCH,
            progress: Callable[[str, int], None] | None = None) -> Report:
    """Copy ``source`` (SQLite) into ``target`` (PostgreSQL); see the module docstring."""
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise InvalidParameterError("store migrate copies a sqlite:/// catalog into a postgresql:// one.")
    if batch < 1:
        raise InvalidParameterError("--batch must be at least 1.")
    _check_ledger_prefix(source, target)
    report = Report()
    for table in (*TABLES, LEDGER):
        report.copied[table.name] = _copy(source, target, table, batch, progress)
    src_head, dst_head = Ledger(source).head(), Ledger(target).head()
    report.head_seq = dst_head["seq"] if dst_head else 0
    report.head_hash = dst_head["hash"] if dst_head else ""
    if (src_head or {}).get("hash") != (dst_head or {}).get("hash"):
        raise IntegrityFailedError(
            f"after the copy the target's ledger head is {report.head_seq}:{report.head_hash or '-'} but the "
            f"source's is {(src_head or {}).get('seq', 0)}:{(src_head or {}).get('hash', '-')}; was the source "
            "written to during the copy? Stop the service on the source, then run the migration again.")
    result = Ledger(target).verify(expected_head_hash=src_head["hash"] if src_head else None)
    if not result.ok:
        raise IntegrityFailedError(f"the copied ledger does not verify: {result.reason}")
    report.verified = True
    return report


def _check_ledger_prefix(source: Catalog, target: Catalog) -> None:
    """The target's ledger must be the start of the source's (empty, or a run cut short)."""
    head = Ledger(target).head()
    if head is None:
        return
    mine = source.connection().execute("SELECT hash FROM ledger WHERE seq = ?", (head["seq"],)).fetchone()
    if mine is None or mine[0] != head["hash"]:
        raise InvalidParameterError(
            f"the target already holds a ledger that is not this catalog's (its record {head['seq']} differs): "
            "migrate into an empty PostgreSQL database.")


def _copy(source: Catalog, target: Catalog, table: Table, batch: int,
          progress: Callable[[str, int], None] | None) -> int:
    done = 0
    dims = _dims(source) if table.name == "faces" else {}  # collections are copied before faces
    for rows in _batches(source, target, table, batch):
        values = [_target_row(source, table, row, dims) for row in rows]
        columns = ", ".join("embedding" if c == "vector" else c for c in table.columns)
        marks = ", ".join("?" * len(table.columns))
        with target.transaction() as tx:
            conn = target.write_connection(tx)
            if table.name == "collections":  # each with its faces partition, in the same transaction
                written = _copy_collections(conn, table, values)
            else:
                cur = conn.executemany(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", values)
                written = cur.rowcount
        done += max(written, 0)  # rows actually written (a row already there is not counted)
        if progress is not None:
            progress(table.name, done)
    return done


def _copy_collections(conn: Any, table: Table, values: list[tuple[Any, ...]]) -> int:
    """Insert collection rows one by one; each one new gets pgvector's partition and stats row."""
    columns = ", ".join(table.columns)
    marks = ", ".join("?" * len(table.columns))
    new = 0
    for row in values:
        made = conn.execute(f"INSERT INTO collections ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING "
                            "RETURNING collection_id, dim, metric", row).fetchone()
        if made is not None:
            dialect.vectors_created(conn, made[0], int(made[1]), str(made[2]))
            new += 1
    return new


def _batches(source: Catalog, target: Catalog, table: Table, batch: int) -> Iterator[list[Any]]:
    key = ", ".join(table.key)
    after: tuple[Any, ...] | None = None
    if table.resume:
        last = target.connection().execute(
            f"SELECT {key} FROM {table.name} ORDER BY {', '.join(k + ' DESC' for k in table.key)} LIMIT 1"
        ).fetchone()
        after = tuple(last) if last is not None else None
    cols = ", ".join(table.columns)
    while True:
        if after is None:
            sql, params = f"SELECT {cols} FROM {table.name} ORDER BY {key} LIMIT ?", (batch,)
        else:
            marks = ", ".join("?" * len(table.key))
            sql = f"SELECT {cols} FROM {table.name} WHERE ({key}) > ({marks}) ORDER BY {key} LIMIT ?"
            params = (*after, batch)
        rows = source.connection().execute(sql, params).fetchall()
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][c] for c in table.key)


def _dims(source: Catalog) -> dict[str, int]:
    """Each collection's vector dimension (its pack's): how long a sealed vector's plaintext is."""
    return {c["collection_id"]: int(c["dim"]) for c in source.list_collections(None, 1_000_000)}


def _target_row(source: Catalog, table: Table, row: Any, dims: dict[str, int]) -> tuple[Any, ...]:
    values = [row[c] for c in table.columns]
    if table.name == "faces":
        i = table.columns.index("vector")
        dim = dims[row["collection_id"]]
        values[i] = blob_to_vector(source.open_vector(row["vector"], row["face_id"], 4 * dim))
    return tuple(values)
