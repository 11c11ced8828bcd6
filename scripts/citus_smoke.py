"""Smoke test of the pgvector store on a Citus cluster (run by scripts/citus-cluster.sh).

Creates the faces and stats tables, distributes them (faces by face_id, so
one collection's search runs on every worker), writes seeded faces the way
the catalog does on Citus (``note_written`` in the writing transaction),
checks exact search against the in-memory index, builds the HNSW index and
checks an approximate search says so. Exits non-zero on any mismatch.
Usage: python scripts/citus_smoke.py postgresql://... SHARDS
"""

from __future__ import annotations

import sys

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from faceledger.store.pg_vectors import (
    STANDALONE_FACES_DDL,
    PgVectorIndex,
    configure_connection,
    create_partition,
    distribute,
    install,
    note_written,
)
from faceledger.store.vectors import VectorIndex


def main(uri: str, shards: int) -> None:
    rng = np.random.default_rng(14)
    n = 20_000
    mat = rng.standard_normal((n, 128)).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True) / 0.8
    ids = [f"f{i:07d}" for i in range(n)]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(STANDALONE_FACES_DDL)
        install(conn, triggers=False)
        distribute(conn, shards)
    with psycopg.connect(uri) as conn:
        create_partition(conn, "smoke", 128, "euclidean")  # a partition of a distributed table: distributed too
        configure_connection(conn)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO faces (collection_id, face_id, embedding) VALUES ('smoke', %s, %s)",
                            list(zip(ids, mat, strict=True)))
        note_written(conn, "smoke", added=n)
    pool = ConnectionPool(uri, min_size=1, max_size=2, open=True)
    try:
        pg, mem = PgVectorIndex(pool), VectorIndex()
        mem.load("smoke", ids, mat)
        assert pg.size("smoke") == n, pg.size("smoke")
        for q in mat[:20] + 0.01:
            got, want = pg.search("smoke", q, 10), mem.search("smoke", q, 10)
            assert [g[0] for g in got] == [w[0] for w in want] and got.exact, (got, want)
        plan = pg.explain("smoke", mat[0], 10)
        print(plan)
        assert "Task Count: " + str(shards) in plan, "the search did not fan out to every shard"
        ann = PgVectorIndex(pool, ann_min_faces=1, ef_search=100, build_in_background=False)
        ann.build_ann("smoke")
        hit = ann.search("smoke", mat[0] + 0.01, 10)
        assert not hit.exact and hit[0][0] == ids[0], hit
        print(f"citus smoke: exact search equals the embedded index on {n} faces over {shards} shards; "
              "HNSW search answers and says it is approximate")
    finally:
        pool.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
