"""Face descriptors searched inside PostgreSQL with pgvector, one ``faces`` partition per collection.

The catalog's transaction writes each face's ``embedding`` column itself, so
this module only shapes the table (``create_partition``/``drop_partition``,
called inside the catalog's transaction) and reads it (``PgVectorIndex``,
the same methods the service calls on the in-memory ``VectorIndex``).

Search is exact (a sequential scan of the collection's partition, ``ORDER BY
embedding <-> q LIMIT k``, index scans switched off for the transaction) up
to ``ann_min_faces`` faces; above it, once the partition's HNSW index has
been built (in the background, ``CREATE INDEX CONCURRENTLY``), it is an HNSW
scan with ``hnsw.ef_search`` set per query, and its result says it was not
exact (``Matches.exact`` False, with the measured recall as
``recall_estimate``) so the service can tell the caller a mate may be missing.
Candidates come back with their vectors and are re-ranked with float64
distances, so exact results equal the in-memory index's: same ids, same
distances, same order (ties by face id).

Sizes and generations come from ``face_vector_stats``, kept by statement
triggers in the writing transaction, so every process sees a write the moment
it commits. This module knows nothing of thresholds, similarity or policy.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types import TypeInfo
from psycopg_pool import ConnectionPool

from faceledger.errors import PackUnavailableError
from faceledger.store.pg_db import unavailable
from faceledger.store.vectors import Match, Matches

log = logging.getLogger(__name__)

EF_SEARCH_MAX = 1000  # pgvector's ceiling for hnsw.ef_search; a larger k is answered exactly
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
_OPS = {"euclidean": ("<->", "vector_l2_ops"), "cosine": ("<=>", "vector_cosine_ops")}
_STATE_TTL_S = 2.0  # how long a process trusts its view of "this partition's HNSW index is valid"
# recall@1 of the HNSW scan against exact search at 1M faces, lfw_dev descriptors plus synthetic ones
# (docs/benchmarks.md, "pgvector"; smaller collections measured as high or higher): the estimate a
# non-exact result carries, for the largest measured ef_search at or below the one used
MEASURED_RECALL_AT_1 = {40: 0.91, 100: 0.98, 200: 0.99, 400: 0.99, 800: 0.99}

# Counts and generations per collection. On one PostgreSQL the triggers below keep them, in the same
# transaction as the faces they count; on Citus (no triggers across shards) the catalog calls
# ``note_written`` in its transaction instead. ``install`` runs it once per database (tests, Citus); the
# catalog's schema installs the same objects as its migration v5 (store/pg_schema.py, a frozen copy: a
# change to these is a new migration there as well).
# The faces table cut down to what this module reads, for what runs it without the catalog (the
# pgvector benchmark, the Citus smoke test, this module's unit tests). The catalog's own faces table,
# with every column, is store/pg_schema.py's.
STANDALONE_FACES_DDL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS faces (
    collection_id text NOT NULL,
    face_id text NOT NULL,
    user_id text,
    embedding vector NOT NULL,
    PRIMARY KEY (collection_id, face_id)
) PARTITION BY LIST (collection_id);
"""

STATS_DDL = """
CREATE SEQUENCE IF NOT EXISTS face_vector_generation;
CREATE TABLE IF NOT EXISTS face_vector_stats (
    collection_id text PRIMARY KEY,
    dim integer NOT NULL,
    metric text NOT NULL,
    faces bigint NOT NULL DEFAULT 0,
    generation bigint NOT NULL
);
"""
TRIGGERS_DDL = """
CREATE OR REPLACE FUNCTION face_vector_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE face_vector_stats s SET faces = s.faces + n.c, generation = nextval('face_vector_generation')
          FROM (SELECT collection_id, count(*) AS c FROM new_rows GROUP BY collection_id) n
         WHERE s.collection_id = n.collection_id;
    ELSE
        UPDATE face_vector_stats s SET faces = s.faces - n.c, generation = nextval('face_vector_generation')
          FROM (SELECT collection_id, count(*) AS c FROM old_rows GROUP BY collection_id) n
         WHERE s.collection_id = n.collection_id;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION face_vector_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE face_vector_stats SET generation = nextval('face_vector_generation')
     WHERE collection_id = NEW.collection_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER faces_counted_insert AFTER INSERT ON faces
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION face_vector_counted();
CREATE OR REPLACE TRIGGER faces_counted_delete AFTER DELETE ON faces
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION face_vector_counted();
CREATE OR REPLACE TRIGGER faces_vector_changed AFTER UPDATE OF embedding ON faces
    FOR EACH ROW WHEN (OLD.embedding IS DISTINCT FROM NEW.embedding) EXECUTE FUNCTION face_vector_changed();
"""


def install(conn: psycopg.Connection[Any], *, triggers: bool = True) -> None:
    """The vector extension, the stats table and (unless on Citus) the faces triggers; ``faces`` must exist."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute(STATS_DDL)
    if triggers:
        conn.execute(TRIGGERS_DDL)


def distribute(conn: psycopg.Connection[Any], shard_count: int) -> None:
    """On a Citus coordinator, after ``install(conn, triggers=False)``: shard the faces and the stats.

    ``faces`` is sharded by ``face_id``, not ``collection_id``: sharded by the
    collection, one collection would live in one shard on one worker and its
    search would use one machine. By face id every collection spreads over all
    shards; its search fans out to every worker (``WHERE collection_id`` prunes
    to the collection's partition inside each shard) and each returns its own
    top k, which the coordinator merges (Citus pushes ``ORDER BY ... LIMIT``
    down). The primary key (collection_id, face_id) contains the distribution
    column, as Citus requires. The stats table is sharded by collection id.
    """
    conn.execute("SELECT create_distributed_table('faces', 'face_id', shard_count => %s)", (int(shard_count),))
    conn.execute("SELECT create_distributed_table('face_vector_stats', 'collection_id')")


def note_written(conn: psycopg.Connection[Any], collection_id: str, added: int = 0, removed: int = 0) -> None:
    """Count a write in the stats row, inside the writer's transaction: only where ``install(triggers=False)``.

    The generation is drawn first: Citus refuses volatile functions (``nextval``)
    in an UPDATE of a distributed table.
    """
    row = conn.execute("SELECT nextval('face_vector_generation')").fetchone()
    assert row is not None
    conn.execute("UPDATE face_vector_stats SET faces = faces + %s, generation = %s WHERE collection_id = %s",
                 (int(added) - int(removed), int(row[0]), collection_id))


def partition_name(collection_id: str) -> str:
    """The partition's table name: a fixed hash, since collection ids may be 255 chars with dots and dashes."""
    return "faces_" + hashlib.sha256(collection_id.encode()).hexdigest()[:24]


def _index_name(collection_id: str) -> str:
    return partition_name(collection_id) + "_hnsw"


# Adding or removing a partition takes an ACCESS EXCLUSIVE lock on ``faces`` until the commit: it waits
# for every open transaction on faces and every search and write queues behind it. Waiting longer than
# this is refused (LockNotAvailable) rather than stalling the whole service behind one long transaction.
PARTITION_LOCK_TIMEOUT_S = 5.0


@contextmanager
def _partition_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(PARTITION_LOCK_TIMEOUT_S * 1000)}ms")))
    yield
    conn.execute("SET LOCAL lock_timeout = DEFAULT")  # the rest of the transaction (the ledger lock) waits as before


def create_partition(conn: psycopg.Connection[Any], collection_id: str, dim: int, metric: str) -> None:
    """The collection's faces partition (refusing vectors of another dimension) and its stats row."""
    if metric not in _OPS:
        raise ValueError(f"metric must be one of {', '.join(_OPS)}, not {metric!r}")
    part = sql.Identifier(partition_name(collection_id))
    with _partition_lock(conn):
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF faces FOR VALUES IN ({})").format(
            part, sql.Literal(collection_id)))
    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (vector_dims(embedding) = {})").format(
        part, sql.Identifier(partition_name(collection_id) + "_dim"), sql.Literal(int(dim))))
    conn.execute("INSERT INTO face_vector_stats (collection_id, dim, metric, faces, generation) "
                 "VALUES (%s, %s, %s, 0, nextval('face_vector_generation'))", (collection_id, int(dim), metric))


def unpin_partition(conn: psycopg.Connection[Any], collection_id: str) -> None:
    """Before every vector of the collection is replaced by another pack's: drop its HNSW index and dim check.

    In the swapping transaction (a plain DROP INDEX: it cannot be concurrent there); the index is
    rebuilt in the background at the next search, as after any crossing of ``ann_min_faces``.
    """
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(_index_name(collection_id))))
    conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
        sql.Identifier(partition_name(collection_id)), sql.Identifier(partition_name(collection_id) + "_dim")))


def pin_partition(conn: psycopg.Connection[Any], collection_id: str, dim: int, metric: str) -> None:
    """After the swap: the new dimension checked (on every row) and the stats row's dim and metric."""
    if metric not in _OPS:
        raise ValueError(f"metric must be one of {', '.join(_OPS)}, not {metric!r}")
    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (vector_dims(embedding) = {})").format(
        sql.Identifier(partition_name(collection_id)), sql.Identifier(partition_name(collection_id) + "_dim"),
        sql.Literal(int(dim))))
    conn.execute("UPDATE face_vector_stats SET dim = %s, metric = %s, generation = nextval('face_vector_generation') "
                 "WHERE collection_id = %s", (int(dim), metric, collection_id))


def drop_partition(conn: psycopg.Connection[Any], collection_id: str) -> None:
    """Drop the collection's partition (its HNSW index goes with it) and its stats row; absent is fine."""
    part = partition_name(collection_id)
    exists = conn.execute("SELECT 1 FROM pg_class WHERE relname = %s AND relispartition", (part,)).fetchone()
    if exists:
        # detached first: foreign keys onto faces (thumbnails, staged vectors) hold a partition still attached;
        # detaching checks that no row references it (the caller deleted the faces, cascading to them)
        with _partition_lock(conn):
            conn.execute(sql.SQL("ALTER TABLE faces DETACH PARTITION {}").format(sql.Identifier(part)))
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part)))
    conn.execute("DELETE FROM face_vector_stats WHERE collection_id = %s", (collection_id,))


def configure_connection(conn: psycopg.Connection[Any]) -> None:
    """Teach a connection pgvector's binary ``vector`` type (numpy float32 in and out)."""
    from pgvector.psycopg.vector import register_vector_info

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise psycopg.errors.UndefinedObject("the vector extension is not installed in this database")
    register_vector_info(conn, info)


def _as_matrix(queries: np.ndarray, dim: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"vectors must have shape (N, {dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("vectors must be finite (no NaN or infinity)")
    return arr


def _distances(metric: str, mat: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 distances of float32 rows to ``q``, as the in-memory index computes them."""
    m, qq = mat.astype(np.float64), q.astype(np.float64)
    if metric == "euclidean":
        diff = m - qq
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    norms = np.linalg.norm(m, axis=1) * float(np.linalg.norm(qq))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.where(norms > 0, (m @ qq) / norms, 0.0)


def _np(value: Any) -> np.ndarray:
    """pgvector's loader gives ``Vector`` objects: their float32 array."""
    return value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value, dtype=np.float32)


def _tolerance(distance: float) -> float:
    # pgvector sums in float32: its distance may differ from the float64 one by ~1e-6 relative
    return 1e-4 * max(1.0, abs(distance)) + 1e-6


class _Collection:
    __slots__ = ("dim", "metric", "faces", "generation")

    def __init__(self, row: tuple[int, str, int, int]) -> None:
        self.dim, self.metric, self.faces, self.generation = int(row[0]), str(row[1]), int(row[2]), int(row[3])


class PgVectorIndex:
    """k-NN over the ``faces`` table's ``embedding`` column, one partition per collection. Thread-safe.

    ``ann_min_faces``: at this many faces a partition gets an HNSW index and
    searches use it once it is valid (0: never). ``ef_search``: the HNSW
    candidate list per query (raised to ``k`` when ``k`` is larger).
    ``batch``: ``"lateral"`` sends a batch of probes as one LATERAL join,
    ``"each"`` as one statement per probe (docs/benchmarks.md measures both).
    """

    def __init__(self, pool: ConnectionPool, *, ann_min_faces: int = 0, ef_search: int = 200,
                 batch: str = "each", build_in_background: bool = True) -> None:
        if batch not in ("each", "lateral"):
            raise ValueError(f"batch must be 'each' or 'lateral', not {batch!r}")
        self._pool = pool
        self.ann_min_faces = ann_min_faces
        self.ef_search = max(1, min(int(ef_search), EF_SEARCH_MAX))
        self.batch = batch
        self._background = build_in_background
        self._lock = threading.Lock()
        self._ann_state: dict[str, tuple[float, bool]] = {}
        self._building: set[str] = set()

    @classmethod
    def from_settings(cls, pool: ConnectionPool, settings: Any) -> PgVectorIndex:
        """The index as ``FACELEDGER_PG_ANN_MIN_FACES`` and ``FACELEDGER_PG_EF_SEARCH`` configure it."""
        return cls(pool, ann_min_faces=settings.pg_ann_min_faces, ef_search=settings.pg_ef_search)

    # ---- connections -----------------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; PostgreSQL gone (or no connection in time) -> StoreUnavailableError (503)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            conninfo = self._pool.conninfo
            raise unavailable(exc, str(conninfo() if callable(conninfo) else conninfo)) from exc

    @staticmethod
    def _ready(conn: psycopg.Connection[Any]) -> None:
        if conn.adapters.types.get("vector") is None:
            configure_connection(conn)

    def _stats(self, conn: psycopg.Connection[Any], collection_id: str) -> _Collection | None:
        row = conn.execute("SELECT dim, metric, faces, generation FROM face_vector_stats WHERE collection_id = %s",
                           (collection_id,)).fetchone()
        return None if row is None else _Collection(row)

    # ---- the catalog writes the vectors; these keep the VectorIndex surface -------------------------
    def load(self, collection_id: str, face_ids: Sequence[str], matrix: np.ndarray, *,
             dim: int = 128, metric: str = "euclidean", pack: str | None = None) -> None:
        """No-op for the vectors (they are the catalog's rows: start-up loads nothing).

        A migration in place calls it after its swap committed: forget what this process
        knew of the collection's HNSW index (the swap dropped it).
        """
        with self._lock:
            self._ann_state.pop(collection_id, None)

    def spec(self, collection_id: str) -> tuple[int, str] | None:
        """The collection's ``(dim, metric)``, None for an unknown collection."""
        with self._conn() as conn:
            stats = self._stats(conn, collection_id)
        return None if stats is None else (stats.dim, stats.metric)

    @staticmethod
    def _check_pack(conn: psycopg.Connection[Any], collection_id: str, expect: str | None) -> None:
        """PackUnavailableError when the collection's vectors are not ``expect``'s (as the in-memory index)."""
        if expect is None:
            return
        row = conn.execute("SELECT model_version FROM collections WHERE collection_id = %s",
                           (collection_id,)).fetchone()
        if row is not None and row[0] != expect:
            raise PackUnavailableError(
                f"Collection {collection_id} now holds {row[0]} vectors, not {expect}: it was migrated "
                "while this call ran. Vectors of different model packs are never compared; retry the call.")

    def add(self, collection_id: str, face_ids: Sequence[str], matrix: np.ndarray) -> None:
        """Called after the catalog committed the faces: starts the HNSW build when the partition crossed the size."""
        if self.ann_min_faces > 0 and self.size(collection_id) >= self.ann_min_faces:
            self.ensure_ann(collection_id)

    def remove(self, collection_id: str, face_ids: Iterable[str]) -> int:
        """How many of ``face_ids`` are gone (the catalog deleted the rows; unknown ids count as gone)."""
        ids = sorted(set(face_ids))
        if not ids:
            return 0
        with self._conn() as conn:
            present = conn.execute("SELECT count(*) FROM faces WHERE collection_id = %s AND face_id = ANY(%s)",
                                   (collection_id, ids)).fetchone()
        return len(ids) - int(present[0] if present else 0)

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._ann_state.pop(collection_id, None)

    # ---- reads ----------------------------------------------------------------------------------
    def size(self, collection_id: str) -> int:
        with self._conn() as conn:
            stats = self._stats(conn, collection_id)
        return 0 if stats is None else stats.faces

    def generation(self, collection_id: str) -> int:
        """A number that changes whenever the collection's vectors do (0 for an unknown collection)."""
        with self._conn() as conn:
            stats = self._stats(conn, collection_id)
        return 0 if stats is None else stats.generation

    def collection_ids(self) -> list[str]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT collection_id FROM face_vector_stats ORDER BY collection_id")]

    def vectors(self, collection_id: str, face_ids: Sequence[str],
                expect: str | None = None) -> tuple[list[str], np.ndarray]:
        """The ids of ``face_ids`` still present (in order) and their vectors."""
        with self._conn() as conn:
            self._ready(conn)
            self._check_pack(conn, collection_id, expect)
            stats = self._stats(conn, collection_id)
            if stats is None:
                return [], np.zeros((0, 128), dtype=np.float32)
            found = dict(conn.execute("SELECT face_id, embedding FROM faces WHERE collection_id = %s "
                                      "AND face_id = ANY(%s)", (collection_id, list(face_ids))).fetchall())
        present = [f for f in face_ids if f in found]
        mat = np.array([_np(found[f]) for f in present], dtype=np.float32).reshape(len(present), stats.dim)
        return present, mat

    def sample(self, collection_id: str, rows: Callable[[int], np.ndarray],
               expect: str | None = None) -> tuple[list[str], np.ndarray]:
        """Face ids and vectors at ``rows(n)``, row numbers in face-id order, read in one snapshot.

        Ids first, vectors only for the picked rows: no window function (Citus
        cannot push one down that is not partitioned by its distribution column).
        """
        with self._conn() as conn:
            self._ready(conn)
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the ids and vectors agree
                self._check_pack(conn, collection_id, expect)
                stats = self._stats(conn, collection_id)
                if stats is None:
                    return [], np.zeros((0, 128), dtype=np.float32)
                ids = [r[0] for r in conn.execute(
                    "SELECT face_id FROM faces WHERE collection_id = %s ORDER BY face_id", (collection_id,))]
                picked = [ids[int(i)] for i in np.asarray(rows(len(ids)), dtype=np.int64)] if ids else []
                found = dict(conn.execute("SELECT face_id, embedding FROM faces WHERE collection_id = %s "
                                          "AND face_id = ANY(%s)", (collection_id, sorted(set(picked)))).fetchall())
        mat = np.array([_np(found[f]) for f in picked], dtype=np.float32).reshape(len(picked), stats.dim)
        return picked, mat

    # ---- search ---------------------------------------------------------------------------------
    def search(self, collection_id: str, query: np.ndarray, k: int, max_distance: float | None = None,
               expect: str | None = None) -> Matches:
        """The k nearest faces as ``(face_id, distance)``, nearest first; several queries rank by the nearest.

        ``expect``: the pack the query vectors belong to; PackUnavailableError if the collection's are another's.
        """
        per_query = self.search_batch(collection_id, np.atleast_2d(np.asarray(query, dtype=np.float32)), k,
                                      max_distance, expect)
        if len(per_query) == 1:
            return per_query[0]
        best: dict[str, float] = {}
        for matches in per_query:
            for face_id, dist in matches:
                best[face_id] = min(dist, best.get(face_id, math.inf))
        merged = sorted(best.items(), key=lambda m: (m[1], m[0]))[: max(k, 0)]
        exact = all(m.exact for m in per_query)
        return Matches(merged, exact=exact, recall_estimate=None if exact else per_query[0].recall_estimate)

    def search_batch(self, collection_id: str, queries: np.ndarray, k: int,
                     max_distance: float | None = None, expect: str | None = None) -> list[Matches]:
        """One result per row of ``queries``; each says whether it was exact."""
        with self._conn() as conn, conn.transaction():
            self._ready(conn)
            self._check_pack(conn, collection_id, expect)
            stats = self._stats(conn, collection_id)
            if stats is None:
                return [Matches() for _ in range(np.atleast_2d(queries).shape[0])]
            qs = _as_matrix(queries, stats.dim)
            if stats.faces == 0 or k <= 0:
                return [Matches() for _ in range(qs.shape[0])]
            k = min(k, stats.faces)
            ann = k <= EF_SEARCH_MAX and self._ann_usable(conn, collection_id, stats)
            self._plan(conn, ann, k)
            rows = self._candidates(conn, collection_id, stats, qs, k, max_distance, ann)
        recall = None if not ann else _recall_estimate(max(self.ef_search, k))
        return [Matches(self._rerank(stats, q, got, k, max_distance), exact=not ann, recall_estimate=recall)
                for q, got in zip(qs, rows, strict=True)]

    def _plan(self, conn: psycopg.Connection[Any], ann: bool, k: int) -> None:
        """Pin the plan for this transaction: the HNSW scan, or a scan of the partition that never uses it."""
        if ann:
            conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(self.ef_search, k))))
            for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                conn.execute(f"SET LOCAL {knob} = off")
        else:
            for knob in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                conn.execute(f"SET LOCAL {knob} = off")

    def explain(self, collection_id: str, query: np.ndarray, k: int) -> str:
        """The plan PostgreSQL runs for one probe now (EXPLAIN text), for operators and tests."""
        with self._conn() as conn, conn.transaction():
            self._ready(conn)
            stats = self._stats(conn, collection_id)
            if stats is None:
                return ""
            ann = k <= EF_SEARCH_MAX and self._ann_usable(conn, collection_id, stats)
            self._plan(conn, ann, k)
            dist = self._distance_sql(stats, ann, sql.SQL("%(q)s"))
            stmt = sql.SQL("EXPLAIN SELECT face_id, embedding, {dist} AS d FROM faces WHERE collection_id = %(c)s "
                           "ORDER BY {dist} LIMIT %(n)s").format(dist=dist)
            q = _as_matrix(query, stats.dim)[0]
            return "\n".join(r[0] for r in conn.execute(stmt, {"q": q, "c": collection_id, "n": k}))

    def _distance_sql(self, stats: _Collection, ann: bool, query: sql.Composable) -> sql.Composable:
        op = sql.SQL(_OPS[stats.metric][0])
        if ann:  # the HNSW index is on this exact expression
            return sql.SQL("(embedding::vector({dim})) {op} ({q})::vector({dim})").format(
                dim=sql.Literal(stats.dim), op=op, q=query)
        return sql.SQL("embedding {op} {q}").format(op=op, q=query)

    def _candidates(self, conn: psycopg.Connection[Any], cid: str, stats: _Collection, qs: np.ndarray, k: int,
                    max_distance: float | None, ann: bool) -> list[list[tuple[str, np.ndarray, float]]]:
        # float32 sums in pgvector can swap near-ties with the float64 ranking: fetch a margin past k
        limit = k + 8 + k // 4
        out: list[list[tuple[str, np.ndarray, float]]] = []
        todo = list(range(qs.shape[0]))
        results: dict[int, list[tuple[str, np.ndarray, float]]] = {}
        while todo:
            fetched = self._fetch(conn, cid, stats, qs[todo], limit, max_distance, ann)
            again = []
            for i, got in zip(todo, fetched, strict=True):
                if not ann and len(got) == limit and got[-1][2] - got[k - 1][2] <= 2 * _tolerance(got[-1][2]):
                    again.append(i)  # a near-tie straddles the margin: look further
                else:
                    results[i] = got
            todo, limit = again, limit * 4
        out = [results[i] for i in range(qs.shape[0])]
        return out

    def _fetch(self, conn: psycopg.Connection[Any], cid: str, stats: _Collection, qs: np.ndarray, limit: int,
               max_distance: float | None, ann: bool) -> list[list[tuple[str, np.ndarray, float]]]:
        radius = None if max_distance is None else max_distance + _tolerance(max_distance)
        if self.batch == "lateral" and qs.shape[0] > 1:
            dist = self._distance_sql(stats, ann, sql.SQL("q.v"))
            where = sql.SQL("") if radius is None else sql.SQL(" AND {} <= {}").format(dist, sql.Literal(radius))
            stmt = sql.SQL(
                "SELECT q.i, m.face_id, m.embedding, m.d FROM unnest(%s::int[], %s::vector[]) AS q(i, v) "
                "CROSS JOIN LATERAL (SELECT face_id, embedding, {dist} AS d FROM faces "
                "WHERE collection_id = %s{where} ORDER BY {dist} LIMIT %s) m ORDER BY q.i, m.d"
            ).format(dist=dist, where=where)
            texts = ["[" + ",".join(repr(float(x)) for x in q) + "]" for q in qs]
            grouped: list[list[tuple[str, np.ndarray, float]]] = [[] for _ in range(qs.shape[0])]
            for i, face_id, emb, d in conn.execute(stmt, (list(range(qs.shape[0])), texts, cid, limit)):
                grouped[i].append((face_id, _np(emb), float(d)))
            return grouped
        dist = self._distance_sql(stats, ann, sql.SQL("%(q)s"))
        where = sql.SQL("") if radius is None else sql.SQL(" AND {} <= %(r)s").format(dist)
        stmt = sql.SQL("SELECT face_id, embedding, {dist} AS d FROM faces WHERE collection_id = %(c)s{where} "
                       "ORDER BY {dist} LIMIT %(n)s").format(dist=dist, where=where)
        return [[(f, _np(e), float(d)) for f, e, d in conn.execute(stmt, {"q": q, "c": cid, "r": radius, "n": limit})]
                for q in qs]

    @staticmethod
    def _rerank(stats: _Collection, q: np.ndarray, got: list[tuple[str, np.ndarray, float]], k: int,
                max_distance: float | None) -> list[Match]:
        if not got:
            return []
        ids = [g[0] for g in got]
        dist = _distances(stats.metric, np.array([g[1] for g in got], dtype=np.float32), q)
        order = sorted(range(len(ids)), key=lambda i: (dist[i], ids[i]))
        out = [(ids[i], float(dist[i])) for i in order[:k]]
        return out if max_distance is None else [m for m in out if m[1] <= max_distance]

    # ---- the approximate index -------------------------------------------------------------------
    def _ann_usable(self, conn: psycopg.Connection[Any], cid: str, stats: _Collection) -> bool:
        if self.ann_min_faces <= 0 or stats.faces < self.ann_min_faces:
            return False
        now = time.monotonic()
        with self._lock:
            held = self._ann_state.get(cid)
        if held is not None and now - held[0] < _STATE_TTL_S:
            return held[1]
        valid = self._index_valid(conn, cid) is True
        with self._lock:
            self._ann_state[cid] = (now, valid)
        if not valid and self._background:
            # another process may have crossed the size: build here then. Never in this thread: a
            # concurrent build waits for every open transaction, this search's too
            self.ensure_ann(cid)
        return valid

    @staticmethod
    def _index_valid(conn: psycopg.Connection[Any], cid: str) -> bool | None:
        """True: built and valid; False: present but invalid (a build in progress or one that failed); None: absent."""
        row = conn.execute("SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                           "WHERE c.relname = %s", (_index_name(cid),)).fetchone()
        return None if row is None else bool(row[0])

    def ensure_ann(self, collection_id: str) -> None:
        """Start the partition's HNSW build in a background thread unless it exists or is being built."""
        with self._lock:
            if collection_id in self._building:
                return
            self._building.add(collection_id)
        if not self._background:
            try:
                self.build_ann(collection_id)
            finally:
                with self._lock:
                    self._building.discard(collection_id)
            return

        def run() -> None:
            try:
                self.build_ann(collection_id)
            except Exception:  # noqa: BLE001 - a failed build leaves exact search in place; say why
                log.exception("HNSW build for collection %s failed; searches stay exact", collection_id)
            finally:
                with self._lock:
                    self._building.discard(collection_id)

        threading.Thread(target=run, name=f"hnsw-{collection_id}", daemon=True).start()

    def build_ann(self, collection_id: str, maintenance_work_mem: str = "1GB") -> bool:
        """Build the HNSW index concurrently (writes go on); one process builds, others return False."""
        # its own connection, outside the pool: the build may take minutes and needs autocommit
        conninfo, kwargs = self._pool.conninfo, self._pool.kwargs
        conninfo = conninfo() if callable(conninfo) else conninfo
        kwargs = dict((kwargs() if callable(kwargs) else kwargs) or {})
        kwargs["autocommit"] = True
        with psycopg.connect(conninfo, **kwargs) as conn:
            lock = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                ("faceledger-hnsw:" + collection_id,)).fetchone()
            if not lock or not lock[0]:
                return False
            stats = self._stats(conn, collection_id)
            state = self._index_valid(conn, collection_id)
            if stats is None or state is True:
                return state is True
            if state is False:  # left invalid by a build that died: CONCURRENTLY leaves it behind
                conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    sql.Identifier(_index_name(collection_id))))
            conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(maintenance_work_mem)))
            conn.execute(sql.SQL(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {idx} ON {part} USING hnsw "
                "((embedding::vector({dim})) {ops}) WITH (m = {m}, ef_construction = {efc})").format(
                idx=sql.Identifier(_index_name(collection_id)), part=sql.Identifier(partition_name(collection_id)),
                dim=sql.Literal(stats.dim), ops=sql.SQL(_OPS[stats.metric][1]),
                m=sql.Literal(HNSW_M), efc=sql.Literal(HNSW_EF_CONSTRUCTION)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(partition_name(collection_id))))
        with self._lock:
            self._ann_state.pop(collection_id, None)
        return True


def _recall_estimate(ef_search: int) -> float:
    usable = [ef for ef in MEASURED_RECALL_AT_1 if ef <= ef_search]
    return MEASURED_RECALL_AT_1[max(usable)] if usable else min(MEASURED_RECALL_AT_1.values())
