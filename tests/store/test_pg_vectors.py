"""pgvector search (store/pg_vectors.py) against a real PostgreSQL: same answers as the in-memory index."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from faceledger.store import VectorIndex
from faceledger.store.pg_vectors import (
    STANDALONE_FACES_DDL,
    PgVectorIndex,
    configure_connection,
    create_partition,
    drop_partition,
    install,
    note_written,
    partition_name,
)
from faceledger.store.vectors import Matches

pgserver = pytest.importorskip("pgserver")

_DBS = itertools.count()
ZEROS, ONES = "[" + ",".join(["0"] * 128) + "]", "[" + ",".join(["1"] * 128) + "]"


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    # run as root, pgserver runs PostgreSQL as its own user, which must reach the folder (pytest's is 0700)
    where = Path(tempfile.mkdtemp(prefix="faceledger-pgvec-"))
    where.chmod(0o755)
    server = pgserver.get_server(where / "pg", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(where, ignore_errors=True)


def _database(pg_server: Any, triggers: bool) -> Iterator[ConnectionPool]:
    name = f"vec{next(_DBS)}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    uri = pg_server.get_uri().replace("/postgres?", f"/{name}?")
    with psycopg.connect(uri) as conn:
        conn.execute(STANDALONE_FACES_DDL)
        install(conn, triggers=triggers)
    p = ConnectionPool(uri, min_size=1, max_size=4, open=True)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def pool(pg_server: Any) -> Iterator[ConnectionPool]:
    yield from _database(pg_server, triggers=True)


@pytest.fixture
def citus_pool(pg_server: Any) -> Iterator[ConnectionPool]:
    """The schema as on Citus: no triggers, the writer counts its writes with ``note_written``."""
    yield from _database(pg_server, triggers=False)


def _dlib_like(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    mat = rng.standard_normal((n, dim)).astype(np.float32)
    return mat / np.linalg.norm(mat, axis=1, keepdims=True) * 0.8


def _ids(n: int, prefix: str = "f") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def _collection(pool: ConnectionPool, cid: str, dim: int = 128, metric: str = "euclidean") -> None:
    with pool.connection() as conn:
        create_partition(conn, cid, dim, metric)


def _insert(pool: ConnectionPool, cid: str, ids: list[str], mat: np.ndarray) -> None:
    with pool.connection() as conn:
        configure_connection(conn)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO faces (collection_id, face_id, embedding) VALUES (%s, %s, %s)",
                            [(cid, f, v) for f, v in zip(ids, mat, strict=True)])


def _same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("batch", ["each", "lateral"])
def test_exact_search_equals_in_memory_index(pool: ConnectionPool, batch: str) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    mat, ids = _dlib_like(rng, n), _ids(n)
    mat[7] = mat[5]  # an exact tie: both indexes break it by face id
    _collection(pool, "people")
    _insert(pool, "people", ids, mat)
    pg, mem = PgVectorIndex(pool, batch=batch), VectorIndex()
    mem.load("people", ids, mat)
    assert pg.size("people") == mem.size("people") == n
    for k in (1, 5, 100):
        q = _dlib_like(rng, 1)[0]
        got = pg.search("people", q, k)
        assert isinstance(got, Matches) and got.exact and got.recall_estimate is None
        assert mem.search("people", q, k).exact  # the in-memory index says so too: the service reads one field
        _same(got, mem.search("people", q, k))
    q = mat[5] + 0.01
    _same(pg.search("people", q, 3), mem.search("people", q, 3))
    _same(pg.search("people", q, 50, max_distance=1.1), mem.search("people", q, 50, max_distance=1.1))
    assert pg.search("people", q, 10, max_distance=0.0) == mem.search("people", q, 10, max_distance=0.0) == []
    qs = _dlib_like(rng, 4)
    for got_b, want_b in zip(pg.search_batch("people", qs, 7), mem.search_batch("people", qs, 7), strict=True):
        _same(got_b, want_b)
    _same(pg.search("people", qs, 9), mem.search("people", qs, 9))  # several probes: ranked by the nearest
    _same(pg.search("people", qs, n, max_distance=1.0), mem.search("people", qs, n, max_distance=1.0))


def test_unknown_and_empty_collections_have_no_faces(pool: ConnectionPool) -> None:
    pg = PgVectorIndex(pool)
    q = np.zeros(128, np.float32)
    assert pg.search("nobody", q, 5) == [] and pg.size("nobody") == 0 and pg.generation("nobody") == 0
    _collection(pool, "empty")
    assert pg.search("empty", q, 5) == [] and pg.collection_ids() == ["empty"]
    assert pg.vectors("nobody", ["x"])[0] == [] and pg.sample("empty", np.arange)[0] == []


def test_sizes_and_generations_follow_every_committed_write(pool: ConnectionPool) -> None:
    rng = np.random.default_rng(4)
    _collection(pool, "a")
    _collection(pool, "b")
    pg = PgVectorIndex(pool)
    g0 = pg.generation("a")
    _insert(pool, "a", _ids(10), _dlib_like(rng, 10))
    g1 = pg.generation("a")
    assert pg.size("a") == 10 and pg.size("b") == 0 and g1 != g0
    with pool.connection() as conn:  # a rolled-back write changes nothing
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute(f"INSERT INTO faces VALUES ('a', 'new', NULL, '{ZEROS}')")
            conn.execute(f"INSERT INTO faces VALUES ('a', 'f0000001', NULL, '{ZEROS}')")
    assert pg.size("a") == 10 and pg.generation("a") == g1
    with pool.connection() as conn:
        conn.execute("UPDATE faces SET user_id = 'u' WHERE collection_id = 'a'")  # not a vector change
    assert pg.generation("a") == g1
    with pool.connection() as conn:
        conn.execute(f"UPDATE faces SET embedding = '{ONES}' WHERE face_id = 'f0000002'")
    g2 = pg.generation("a")
    assert g2 != g1
    with pool.connection() as conn:
        conn.execute("DELETE FROM faces WHERE collection_id = 'a' AND face_id IN ('f0000000', 'f0000003')")
    assert pg.size("a") == 8 and pg.generation("a") not in (g0, g1, g2)
    assert pg.remove("a", ["f0000000", "f0000003", "never"]) == 3
    assert pg.remove("a", ["f0000004"]) == 0  # still there: the catalog did not delete it
    with pool.connection() as conn:
        drop_partition(conn, "a")
    assert pg.collection_ids() == ["b"] and pg.size("a") == 0 and pg.search("a", np.zeros(128), 3) == []
    _collection(pool, "a")  # re-created: a generation it never had
    assert pg.generation("a") not in (g0, g1, g2)


def test_vectors_and_sample_read_the_rows(pool: ConnectionPool) -> None:
    rng = np.random.default_rng(5)
    mat, ids = _dlib_like(rng, 50), _ids(50)
    _collection(pool, "c")
    _insert(pool, "c", ids, mat)
    pg = PgVectorIndex(pool)
    got_ids, got = pg.vectors("c", ["f0000009", "gone", "f0000001"])
    assert got_ids == ["f0000009", "f0000001"]
    np.testing.assert_array_equal(got, mat[[9, 1]])
    s_ids, s_mat = pg.sample("c", lambda n: np.arange(0, n, 10))
    assert s_ids == ids[::10]
    np.testing.assert_array_equal(s_mat, mat[::10])


def test_a_partition_refuses_vectors_of_another_dimension(pool: ConnectionPool) -> None:
    _collection(pool, "wide", dim=192, metric="cosine")
    with pytest.raises(psycopg.errors.CheckViolation):
        _insert(pool, "wide", ["x"], np.ones((1, 128), np.float32))
    with pytest.raises(ValueError, match="metric"):
        _collection(pool, "odd", metric="manhattan")
    assert partition_name("a.b-c" * 50).startswith("faces_") and len(partition_name("a" * 255)) < 63


def test_cosine_collection_ranks_by_cosine_distance(pool: ConnectionPool) -> None:
    rng = np.random.default_rng(6)
    mat, ids = rng.standard_normal((400, 192)).astype(np.float32), _ids(400)
    _collection(pool, "cos", dim=192, metric="cosine")
    _insert(pool, "cos", ids, mat)
    q = rng.standard_normal(192).astype(np.float32)
    m64, q64 = mat.astype(np.float64), q.astype(np.float64)
    cos = 1 - (m64 @ q64) / (np.linalg.norm(m64, axis=1) * np.linalg.norm(q64))
    want = sorted(zip(ids, cos.tolist(), strict=True), key=lambda m: (m[1], m[0]))[:5]
    _same(PgVectorIndex(pool).search("cos", q, 5), want)


def test_hnsw_above_the_size_says_it_may_miss_and_keeps_recall(pool: ConnectionPool) -> None:
    rng = np.random.default_rng(8)
    n = 4000
    mat, ids = _dlib_like(rng, n), _ids(n)
    _collection(pool, "big")
    _collection(pool, "small")
    _insert(pool, "big", ids, mat)
    _insert(pool, "small", ids[:100], mat[:100])
    pg = PgVectorIndex(pool, ann_min_faces=1000, ef_search=100, build_in_background=False)
    exact, mem = PgVectorIndex(pool), VectorIndex()
    mem.load("big", ids, mat)
    q0 = mat[0] + 0.001
    # over the size, but no index yet: exact, at once. (Once it built the index from inside this search's
    # transaction: CREATE INDEX CONCURRENTLY waits for that very transaction, and the search hung.)
    assert pg.search("big", q0, 5).exact
    pg.add("big", [], np.zeros((0, 128), np.float32))  # the service's call after a commit builds it now
    assert "hnsw" in pg.explain("big", q0, 5) and "Seq Scan" in exact.explain("big", q0, 5)
    assert "hnsw" not in pg.explain("big", q0, EF_SEARCH_PLUS_ONE)
    pg.add("small", [], np.zeros((0, 128), np.float32))
    assert pg.search("small", q0, 5).exact  # under the size: exact, no index built
    hits1 = hits10 = 0
    probes = mat[rng.choice(n, 50, replace=False)] + 0.05 * _dlib_like(rng, 50)
    for q in probes:
        got, want = pg.search("big", q, 10), mem.search("big", q, 10)
        assert not got.exact and got.recall_estimate is not None and 0 < got.recall_estimate <= 1
        assert exact.search("big", q, 10).exact
        hits1 += got[0][0] == want[0][0]
        hits10 += len({g[0] for g in got} & {w[0] for w in want})
    assert hits1 / 50 >= 0.95 and hits10 / 500 >= 0.9, (hits1, hits10)
    assert pg.search("big", q0, EF_SEARCH_PLUS_ONE).exact  # k past ef_search's ceiling: answered exactly
    far = pg.search("big", q0, 10, max_distance=0.02)
    assert [m[0] for m in far] == [ids[0]] and not far.exact


EF_SEARCH_PLUS_ONE = 1001


def test_background_build_lets_writes_go_on(pool: ConnectionPool) -> None:
    rng = np.random.default_rng(9)
    _collection(pool, "grow")
    _insert(pool, "grow", _ids(1500), _dlib_like(rng, 1500))
    pg = PgVectorIndex(pool, ann_min_faces=1000)
    pg.add("grow", [], np.zeros((0, 128), np.float32))
    _insert(pool, "grow", _ids(10, "g"), _dlib_like(rng, 10))  # not blocked by the concurrent build
    deadline = time.monotonic() + 60
    while pg.search("grow", np.zeros(128, np.float32), 3).exact:
        assert time.monotonic() < deadline, "the HNSW index was not built in 60 s"
        time.sleep(0.5)
    assert pg.size("grow") == 1510


def test_without_triggers_the_writer_counts_in_its_transaction(citus_pool: ConnectionPool) -> None:
    rng = np.random.default_rng(10)
    _collection(citus_pool, "c")
    pg = PgVectorIndex(citus_pool)
    g0 = pg.generation("c")
    mat = _dlib_like(rng, 20)
    with citus_pool.connection() as conn:
        configure_connection(conn)
        for i, v in enumerate(mat):
            conn.execute("INSERT INTO faces (collection_id, face_id, embedding) VALUES ('c', %s, %s)", (f"f{i}", v))
        note_written(conn, "c", added=20)
    assert pg.size("c") == 20 and pg.generation("c") > g0
    with pytest.raises(RuntimeError), citus_pool.connection() as conn:  # rolled back: neither faces nor count
        conn.execute("DELETE FROM faces WHERE collection_id = 'c'")
        note_written(conn, "c", removed=20)
        raise RuntimeError("the catalog's transaction fails after the delete")
    assert pg.size("c") == 20 and len(pg.search("c", mat[3], 50)) == 20
    assert pg.search("c", mat[3], 1)[0][0] == "f3"
