"""The service's vector index on PostgreSQL: start-up cost and exact search, PgVectorIndex against memory_index.

    PYTHONPATH=src .venv/bin/python scripts/bench_pg_service_index.py N   # N random 128-d faces

A throwaway PostgreSQL (testing_pg, fsync off: the figures are reads). What
Service.open_store did on PostgreSQL before pgvector was wired in (memory_index:
every vector read from the catalog at start) against what it does now
(PgVectorIndex over the catalog's pool: nothing loaded), then the median and p95 of
50 exact k=10 searches through each, and whether both return the same ids.
Figures in docs/benchmarks.md, "pgvector in the service (h2-pgwire)".
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from faceledger import testing_pg
from faceledger.evaluation.server import free_port
from faceledger.service.core import memory_index
from faceledger.store.catalog import Catalog
from faceledger.store.pg_vectors import PgVectorIndex


def faces(rng: np.random.Generator, n: int) -> list[dict]:
    return [{"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()), "confidence": 99.0,
             "bbox": {"Width": .5, "Height": .5, "Left": .1, "Top": .1},
             "vector": rng.standard_normal(128).astype(np.float32)} for _ in range(n)]


def timed_ms(fn) -> tuple[object, float]:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - t) * 1000


def main(n: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="pgw-bench-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    url = testing_pg.start(root / "pg", free_port(), fast=True)
    try:
        cat = Catalog.open_postgres(root / "data", url)
        rng = np.random.default_rng(0)
        with cat.transaction() as tx:
            cat.create_collection(tx, "c", "m", {}, time.time())
        for start in range(0, n, 5000):
            with cat.transaction() as tx:
                cat.add_faces(tx, "c", faces(rng, min(5000, n - start)))
        mem, t_mem = timed_ms(lambda: memory_index(cat))
        pg, t_pg = timed_ms(lambda: PgVectorIndex(cat.vector_pool))
        print(f"N={n} start-up index: memory_index {t_mem:.0f} ms, PgVectorIndex {t_pg:.2f} ms")
        qs = rng.standard_normal((50, 128)).astype(np.float32)
        for name, idx in (("memory", mem), ("pgvector", pg)):
            idx.search("c", qs[0], 10)  # type: ignore[attr-defined]
            ts = [timed_ms(lambda q=q, idx=idx: idx.search("c", q, 10))[1] for q in qs]  # type: ignore[attr-defined]
            print(f"  search k=10 {name}: p50 {np.median(ts):.2f} ms, p95 {np.percentile(ts, 95):.2f} ms")
        same = all([m[0] for m in mem.search("c", q, 10)] == [m[0] for m in pg.search("c", q, 10)]  # type: ignore[attr-defined]
                   for q in qs)
        print(f"  same ids: {same}")
        cat.close()
    finally:
        testing_pg.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
