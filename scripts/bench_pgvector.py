"""Benchmark face search in PostgreSQL + pgvector (store/pg_vectors.py) at growing collection sizes.

One collection grows through ``--sizes`` (default 100k, 300k, 1M faces). At
each size it measures, single client, the same probes on:
  - the embedded in-memory index (store/vectors.py): exact p50/p99;
  - PostgreSQL exact search (scan of the partition): p50/p99, checked equal to the embedded answer;
  - PostgreSQL HNSW (built at that size) for each ``--ef`` value: p50/p99, recall@1 and @10 against
    exact, and how often the probe's true mate is still found;
  - batch search of ``--batch`` probes: one statement per probe vs one LATERAL join;
  - the vector write path: single-face INSERT + COMMIT (what one IndexFaces adds to the catalog's
    transaction), without and with the HNSW index; bulk COPY rows/s;
  - disk (table, HNSW index) and the PostgreSQL memory settings used.

Data: lfw_dev descriptors from the real default engine (``--descriptors``, an
``eval`` cache; compute it with ``--describe``). The gallery holds one image
per identity; probes are other images of those identities (their mate is in
the gallery). The rest of each size is synthetic: a random real descriptor
(never a probe) plus a Gaussian perturbation drawn from the real descriptors' covariance,
scaled so two synthetic faces grown from one seed are as far apart as two
different real people on average (so synthetic faces are distinct people
that crowd the real ones, as a large booking-photo gallery would).

Usage: PYTHONPATH=src .venv/bin/python scripts/bench_pgvector.py [--sizes 100000,300000,1000000]
       [--queries 200] [--ef 40,100,200] [--out /tmp/pgvec/bench.json] [--workdir /tmp/pgvec/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.evaluation.bare import percentile_ms
from faceledger.store.pg_vectors import (
    STANDALONE_FACES_DDL,
    PgVectorIndex,
    configure_connection,
    create_partition,
    install,
    partition_name,
)
from faceledger.store.vectors import VectorIndex, limit_blas_threads

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw_dev"
CID = "bench"


def describe(cache: str, limit: int | None) -> None:
    from faceledger.evaluation.embedding import describe_files, image_paths, save_cache

    paths = image_paths(str(LFW), limit)
    print(save_cache(cache, str(LFW), describe_files(paths, procs=os.cpu_count() or 1)))


def load_real(cache: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(cache) as z:
        ok = z["ok"]
        vecs, rel = z["plain"][ok].astype(np.float32), z["rel"][ok]
    people = np.array([str(r).split("/")[0] for r in rel])
    return vecs, people


def real_statistics(vecs: np.ndarray, people: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    i, j = rng.integers(0, len(vecs), 200_000), rng.integers(0, len(vecs), 200_000)
    same_i, same_j = [], []
    for p in np.unique(people):
        idx = np.flatnonzero(people == p)
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                same_i.append(idx[a])
                same_j.append(idx[b])
    diff = (people[i] != people[j])
    d_diff = np.linalg.norm(vecs[i[diff]] - vecs[j[diff]], axis=1)
    d_same = np.linalg.norm(vecs[same_i] - vecs[same_j], axis=1)
    return {"same_mean": float(d_same.mean()), "same_p95": float(np.percentile(d_same, 95)),
            "diff_mean": float(d_diff.mean()), "diff_p5": float(np.percentile(d_diff, 5)),
            "same_pairs": len(d_same), "diff_pairs": int(diff.sum())}


def synthesize(vecs: np.ndarray, n: int, diff_mean: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` synthetic faces around real seeds, perturbed along the real covariance."""
    centred = vecs - vecs.mean(axis=0)
    cov = centred.T @ centred / len(vecs)
    root = np.linalg.cholesky(cov + 1e-9 * np.eye(cov.shape[0]))
    # E||root z||^2 = trace(cov); two perturbations from one seed differ by sqrt(2) times that
    scale = diff_mean / np.sqrt(2 * np.trace(cov))
    out = np.empty((n, vecs.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        seeds = vecs[rng.integers(0, len(vecs), m)]
        out[start:start + m] = seeds + scale * (rng.standard_normal((m, vecs.shape[1])) @ root.T)
    return out


def start_pg(workdir: Path, settings: dict[str, str]) -> Any:
    import pgserver
    import psycopg

    pgdir = workdir / "pg"
    server = pgserver.get_server(pgdir, cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    server.cleanup()  # restart: shared_buffers needs it
    return pgserver.get_server(pgdir, cleanup_mode="stop")


def copy_rows(conn: Any, ids: list[str], mat: np.ndarray) -> float:
    t = time.perf_counter()
    with conn.cursor() as cur, cur.copy("COPY faces (collection_id, face_id, embedding) FROM STDIN WITH (FORMAT BINARY)") as cp:
        cp.set_types(["text", "text", "vector"])
        for f, v in zip(ids, mat, strict=True):
            cp.write_row((CID, f, v))
    conn.commit()
    return time.perf_counter() - t


def single_inserts(pool: Any, vecs: np.ndarray, tag: str) -> float:
    """Single-face INSERT + COMMIT, rows/s; the rows are deleted again afterwards."""
    ids = [f"w{tag}{i:06d}" for i in range(len(vecs))]
    with pool.connection() as conn:
        configure_connection(conn)
        t = time.perf_counter()
        for f, v in zip(ids, vecs, strict=True):
            conn.execute("INSERT INTO faces (collection_id, face_id, embedding) VALUES (%s, %s, %s)", (CID, f, v))
            conn.commit()
        rate = len(ids) / (time.perf_counter() - t)
        conn.execute("DELETE FROM faces WHERE collection_id = %s AND face_id = ANY(%s)", (CID, ids))
        conn.commit()
    return rate


def timed_searches(index: Any, probes: np.ndarray, k: int) -> tuple[list[list[tuple[str, float]]], dict]:
    results, took = [], []
    for q in probes:
        t = time.perf_counter()
        results.append(index.search(CID, q, k))
        took.append(time.perf_counter() - t)
    return results, {"p50_ms": percentile_ms(took, 50), "p99_ms": percentile_ms(took, 99),
                     "mean_ms": 1000 * float(np.mean(took))}


def recall(got: list, want: list, k: int) -> tuple[float, float]:
    r1 = np.mean([bool(g) and bool(w) and g[0][0] == w[0][0] for g, w in zip(got, want, strict=True)])
    rk = np.mean([len({m[0] for m in g[:k]} & {m[0] for m in w[:k]}) / max(1, min(k, len(w)))
                  for g, w in zip(got, want, strict=True)])
    return float(r1), float(rk)


def mate_found(results: list, mates: list[str], k: int) -> float:
    return float(np.mean([mate in {m[0] for m in r[:k]} for r, mate in zip(results, mates, strict=True)]))


def batch_compare(pool: Any, probes: np.ndarray, k: int, ann_min: int, ef: int) -> dict[str, float]:
    out = {}
    for mode in ("each", "lateral"):
        index = PgVectorIndex(pool, ann_min_faces=ann_min, ef_search=ef, batch=mode, build_in_background=False)
        index.search_batch(CID, probes[:2], k)  # warm the connection
        t = time.perf_counter()
        index.search_batch(CID, probes, k)
        out[f"{mode}_ms"] = 1000 * (time.perf_counter() - t)
    return out


def relation_sizes(conn: Any) -> dict[str, int]:
    part = partition_name(CID)
    row = conn.execute("SELECT pg_table_size(%s), pg_indexes_size(%s), "
                       "coalesce((SELECT pg_relation_size(%s) WHERE to_regclass(%s) IS NOT NULL), 0)",
                       (part, part, part + "_hnsw", part + "_hnsw")).fetchone()
    return {"table_bytes": int(row[0]), "indexes_bytes": int(row[1]), "hnsw_bytes": int(row[2])}


def gallery_and_probes(vecs: np.ndarray, people: np.ndarray, rng: np.random.Generator,
                       queries: int) -> tuple[dict[str, int], np.ndarray, list[str]]:
    # returns the gallery rows by identity, the probe rows and each probe's mate (its gallery face id)
    """The gallery (first image of each identity) and probes: a later image of identities with several."""
    first: dict[str, int] = {}
    probe_rows: list[int] = []
    probed: set[str] = set()
    for i, p in enumerate(people):
        if p not in first:
            first[p] = i
        elif p not in probed:  # one probe per identity
            probed.add(p)
            probe_rows.append(i)
    pick = rng.choice(len(probe_rows), min(queries, len(probe_rows)), replace=False)
    mates = [f"r{first[people[probe_rows[i]]]:07d}" for i in pick]
    return first, np.array([probe_rows[i] for i in pick]), mates


def ann_only(args: argparse.Namespace, probes: np.ndarray, mates: list[str]) -> dict:
    """More ef_search values on the collection a previous run left in ``--workdir`` (with its HNSW index)."""
    import pgserver
    from psycopg_pool import ConnectionPool

    server = pgserver.get_server(Path(args.workdir) / "pg", cleanup_mode="stop")
    pool = ConnectionPool(server.get_uri(), min_size=1, max_size=2, open=True)
    try:
        exact = PgVectorIndex(pool)
        truth, lat = timed_searches(exact, probes, args.k)
        row: dict[str, Any] = {"faces": exact.size(CID), "pg_exact": lat, "ann": []}
        for ef in args.ef:
            ann = PgVectorIndex(pool, ann_min_faces=1, ef_search=ef, build_in_background=False)
            ann.search(CID, probes[0], args.k)
            res, lat = timed_searches(ann, probes, args.k)
            r1, r10 = recall(res, truth, args.k)
            row["ann"].append({"ef_search": ef, **lat, "recall_at_1": r1, f"recall_at_{args.k}": r10,
                               "mate_in_top10": mate_found(res, mates, 10)})
            print(json.dumps(row["ann"][-1]), flush=True)
        return {"ann_only": row}
    finally:
        pool.close()
        server.cleanup()


def run(args: argparse.Namespace) -> dict:
    import psycopg
    from psycopg_pool import ConnectionPool

    rng = np.random.default_rng(args.seed)
    vecs, people = load_real(args.descriptors)
    stats = real_statistics(vecs, people, rng)
    first, probe_rows, mates = gallery_and_probes(vecs, people, rng, args.queries)
    probes = vecs[probe_rows]
    if args.ann_only:
        return ann_only(args, probes, mates)
    # no synthetic face grows from a probe: a probe among the seeds would have a cluster of its own
    # perturbations as nearest neighbours, easy for HNSW (a first run measured recall 1.0 at 1M that way)
    seeds = np.delete(vecs, probe_rows, axis=0)
    gallery_rows = sorted(first.values())
    face_of_row = {r: f"r{r:07d}" for r in gallery_rows}
    total = max(args.sizes)
    synth = synthesize(seeds, total - len(gallery_rows), stats["diff_mean"], rng)
    ids = [face_of_row[r] for r in gallery_rows] + [f"s{i:08d}" for i in range(len(synth))]
    mat = np.concatenate([vecs[gallery_rows], synth])
    nn_synth = np.sort(np.linalg.norm(synth[:2000, None, :] - synth[None, 2000:6000, :], axis=2), axis=1)[:, 0]

    workdir = Path(args.workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir.chmod(0o755)
    pg_settings = {"shared_buffers": args.shared_buffers, "work_mem": args.work_mem,
                   "maintenance_work_mem": args.maintenance_work_mem,
                   "max_parallel_workers_per_gather": str(args.parallel_workers),
                   "max_parallel_maintenance_workers": str(args.parallel_workers), "jit": "off"}
    server = start_pg(workdir, pg_settings)
    uri = server.get_uri()
    report: dict[str, Any] = {"real": {"descriptors": int(len(vecs)), "identities": int(len(first)), **stats},
                              "synthetic_nn_distance_p5_p50": [float(np.percentile(nn_synth, 5)),
                                                               float(np.median(nn_synth))],
                              "queries": len(probes), "k": args.k, "pg_settings": pg_settings, "sizes": []}
    with psycopg.connect(uri) as conn:
        conn.execute(STANDALONE_FACES_DDL)
        install(conn)
        create_partition(conn, CID, mat.shape[1], "euclidean")
        conn.commit()
        configure_connection(conn)
    pool = ConnectionPool(uri, min_size=1, max_size=4, open=True)
    limit_blas_threads(1)
    loaded = 0
    write_vecs = synthesize(seeds, args.writes, stats["diff_mean"], rng)
    try:
        for size in sorted(args.sizes):
            row: dict[str, Any] = {"faces": size}
            with psycopg.connect(uri) as conn:
                configure_connection(conn)
                took = copy_rows(conn, ids[loaded:size], mat[loaded:size])
                row["copy_rows_per_s"] = (size - loaded) / took
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE faces")
            loaded = size
            print(f"[{time.strftime('%H:%M:%S')}] {size} faces loaded", flush=True)
            mem = VectorIndex()
            mem.load(CID, ids[:size], mat[:size])
            truth, row["embedded_exact"] = timed_searches(mem, probes, args.k)
            del mem
            exact = PgVectorIndex(pool)
            exact.search(CID, probes[0], args.k)  # warm the cache
            got, row["pg_exact"] = timed_searches(exact, probes, args.k)
            row["pg_exact"]["equal_to_embedded"] = all([m[0] for m in g] == [m[0] for m in w]
                                                       for g, w in zip(got, truth, strict=True))
            row["ratio_pg_to_embedded_p50"] = row["pg_exact"]["p50_ms"] / row["embedded_exact"]["p50_ms"]
            row["mate_in_top10_exact"] = mate_found(truth, mates, 10)
            row["mate_top1_exact"] = mate_found(truth, mates, 1)
            row["batch_exact"] = batch_compare(pool, probes[: args.batch], args.k, 0, 40)
            row["single_insert_rows_per_s_no_index"] = single_inserts(pool, write_vecs, f"a{size}")
            print(f"[{time.strftime('%H:%M:%S')}] exact measured: {row['pg_exact']}", flush=True)
            t = time.perf_counter()
            PgVectorIndex(pool, ann_min_faces=1).build_ann(CID, maintenance_work_mem=args.maintenance_work_mem)
            row["hnsw_build_s"] = time.perf_counter() - t
            print(f"[{time.strftime('%H:%M:%S')}] HNSW built in {row['hnsw_build_s']:.0f} s", flush=True)
            row["ann"] = []
            for ef in args.ef:
                ann = PgVectorIndex(pool, ann_min_faces=1, ef_search=ef, build_in_background=False)
                ann.search(CID, probes[0], args.k)
                res, lat = timed_searches(ann, probes, args.k)
                assert not res[0].exact
                r1, r10 = recall(res, truth, args.k)
                row["ann"].append({"ef_search": ef, **lat, "recall_at_1": r1, f"recall_at_{args.k}": r10,
                                   "mate_in_top10": mate_found(res, mates, 10), "mate_top1": mate_found(res, mates, 1)})
            row["batch_ann"] = batch_compare(pool, probes[: args.batch], args.k, 1, args.ef[0])
            row["single_insert_rows_per_s_with_hnsw"] = single_inserts(pool, write_vecs, f"b{size}")
            with psycopg.connect(uri, autocommit=True) as conn:
                row.update(relation_sizes(conn))
                if size != max(args.sizes):  # the next size builds its own
                    conn.execute(f'DROP INDEX "{partition_name(CID)}_hnsw"')
            report["sizes"].append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(report, indent=1))
    finally:
        pool.close()
        if not args.keep:
            server.cleanup()
    return report


def format_report(r: dict) -> str:
    k = r["k"]
    lines = ["| faces | embedded exact p50/p99 ms | PG exact p50/p99 ms | PG/embedded | HNSW ef | HNSW p50/p99 ms |"
             f" recall@1 | recall@{k} | mate in top-10 (exact / HNSW) | HNSW build s | table + HNSW MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["sizes"]:
        for i, a in enumerate(s["ann"]):
            head = (f"| {s['faces']:,} | {s['embedded_exact']['p50_ms']:.1f} / {s['embedded_exact']['p99_ms']:.1f} | "
                    f"{s['pg_exact']['p50_ms']:.1f} / {s['pg_exact']['p99_ms']:.1f} | {s['ratio_pg_to_embedded_p50']:.1f}x"
                    if i == 0 else "| | | |")
            tail = (f"{s['hnsw_build_s']:.0f} | {s['table_bytes'] / 2**20:.0f} + {s['hnsw_bytes'] / 2**20:.0f} |"
                    if i == 0 else " | |")
            lines.append(f"{head} | {a['ef_search']} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | {a['recall_at_1']:.3f} | "
                         f"{a[f'recall_at_{k}']:.3f} | {s['mate_in_top10_exact']:.3f} / {a['mate_in_top10']:.3f} | {tail}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--ef", default="40,100,200", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--batch", type=int, default=16, help="probes in one batch search")
    parser.add_argument("--writes", type=int, default=500, help="single-face inserts timed per size")
    parser.add_argument("--descriptors", default="/tmp/pgvec/lfw_dev_descriptors.npz")
    parser.add_argument("--describe", action="store_true", help="compute --descriptors from lfw_dev first")
    parser.add_argument("--limit", type=int, default=None, help="with --describe: at most this many images")
    parser.add_argument("--workdir", default="/tmp/pgvec/bench")
    parser.add_argument("--out", default="/tmp/pgvec/bench.json")
    parser.add_argument("--shared-buffers", default="2GB")
    parser.add_argument("--work-mem", default="64MB")
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--parallel-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", action="store_true", help="leave the server running")
    parser.add_argument("--ann-only", action="store_true",
                        help="only HNSW searches at --ef on the collection a previous run left in --workdir")
    args = parser.parse_args()
    if args.describe:
        describe(args.descriptors, args.limit)
    report = run(args)
    if args.ann_only:
        print(json.dumps(report, indent=1))
        return
    print(json.dumps({k: v for k, v in report.items() if k != "sizes"}, indent=1))
    print(format_report(report))


if __name__ == "__main__":
    main()
