"""Catalog write path on SQLite vs PostgreSQL (issue #14): one face + its ledger record per transaction.

    PYTHONPATH=src .venv/bin/python scripts/bench_pg_store.py [--n 500] [--procs 4] [--bulk 20000]

Starts a throwaway PostgreSQL (faceledger.testing_pg, fsync ON: durable commits like SQLite's
synchronous=FULL), measures commits/s in one process on each store, then on PostgreSQL with
--procs writer processes (one collection each, the ledger shared), and the start-up load of the
in-memory index from each catalog. Descriptors are random: no engine in the loop.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from faceledger import testing_pg
from faceledger.evaluation.server import free_port
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger


def face() -> dict:
    return {"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()), "confidence": 99.0,
            "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1},
            "vector": np.random.default_rng().standard_normal(128).astype(np.float32)}


def open_cat(data: str, url: str | None) -> Catalog:
    return Catalog.open_postgres(data, url) if url else Catalog.open(data)


def write(data: str, url: str | None, cid: str, n: int, start: object | None = None) -> float:
    cat = open_cat(data, url)
    ledger = Ledger(cat)
    if start is not None:
        start.wait()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    for _ in range(n):
        with cat.transaction() as tx:
            f = face()
            cat.add_faces(tx, cid, [f])
            ledger.append(tx, operation="IndexFaces", principal="bench", collection_id=cid,
                          details={"face_ids": [f["face_id"]]})
    took = time.perf_counter() - t0
    cat.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--bulk", type=int, default=20000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="faceledger-bench-pg-"))
    out: dict[str, object] = {}
    try:
        base = testing_pg.start(root / "pg", free_port(), fast=False)
        for label, url in (("sqlite", None), ("postgresql", testing_pg.create_database(base, "bench1"))):
            data = str(root / f"data-{label}")
            with open_cat(data, url) as cat, cat.transaction() as tx:
                cat.create_collection(tx, "c", "m", {}, time.time())
            took = write(data, url, "c", args.n)
            out[f"{label}_1proc_commits_per_s"] = round(args.n / took, 1)
            with open_cat(data, url) as cat:
                for _ in range(args.bulk // 500):  # bulk rows for the load figure, 500 a transaction
                    with cat.transaction() as tx:
                        cat.add_faces(tx, "c", [face() for _ in range(500)])
                cat.list_collections(None, 1)  # warm: the pool's first connection is not the load
                t0 = time.perf_counter()
                ids, _ = cat.iter_vectors("c")
                out[f"{label}_load_{len(ids)}_vectors_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        url = testing_pg.create_database(base, "bench2")
        data = str(root / "data-multi")
        with open_cat(data, url) as cat, cat.transaction() as tx:
            for p in range(args.procs):
                cat.create_collection(tx, f"c{p}", "m", {}, time.time())
        ctx = multiprocessing.get_context("spawn")
        start = ctx.Barrier(args.procs + 1)
        procs = [ctx.Process(target=write, args=(data, url, f"c{p}", args.n, start)) for p in range(args.procs)]
        for p in procs:
            p.start()
        start.wait()
        t0 = time.perf_counter()
        for p in procs:
            p.join()
        took = time.perf_counter() - t0
        with open_cat(data, url) as cat:
            ok = Ledger(cat).verify()
        out[f"postgresql_{args.procs}proc_commits_per_s"] = round(args.procs * args.n / took, 1)
        out["postgresql_multi_chain_ok"] = ok.ok and ok.checked == args.procs * args.n
    finally:
        testing_pg.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
