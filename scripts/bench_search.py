"""Benchmark exact k-NN search of faceledger's in-memory VectorIndex.

Synthetic unit-norm 128-d float32 vectors (scaled like dlib descriptors),
single-vector queries, k=10. Prints p50/p99 latency per gallery size.
Each size is also checked against brute force on a few probes.
Usage: .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000]
       [--blas-threads 1]   (0 leaves BLAS threading as numpy found it)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from faceledger.store.vectors import VectorIndex, limit_blas_threads


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty((n, 128), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks to bound temporary memory
        block = rng.standard_normal((min(100_000, n - start), 128), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block * 0.8
    return out


def _check_exact(index: VectorIndex, ids: list[str], mat: np.ndarray, probes: np.ndarray,
                 k: int, max_distance: float | None) -> None:
    for q in probes:
        dist = np.linalg.norm(mat - q, axis=1)
        order = np.argsort(dist, kind="stable")[:k]
        want = [ids[i] for i in order if max_distance is None or dist[i] <= max_distance]
        got = [face_id for face_id, _ in index.search("bench", q, k, max_distance)]
        if got != want:
            raise SystemExit(f"search differs from brute force at N={len(ids)}: {got} != {want}")


def bench(n: int, queries: int, k: int, max_distance: float | None) -> dict[str, float]:
    rng = np.random.default_rng(n)
    mat = _vectors(rng, n)
    ids = [f"{i:032x}" for i in range(n)]
    index = VectorIndex()
    t0 = time.perf_counter()
    index.load("bench", ids, mat)
    load_s = time.perf_counter() - t0
    probes = _vectors(rng, queries)
    _check_exact(index, ids, mat, probes[:3], k, max_distance)
    del mat
    for q in probes[:3]:  # warm-up
        index.search("bench", q, k, max_distance)
    times = []
    for q in probes:
        t = time.perf_counter()
        index.search("bench", q, k, max_distance)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"load_s": load_s, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    if args.blas_threads > 0 and not limit_blas_threads(args.blas_threads):
        print("# threadpoolctl missing: BLAS threads left as they are")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"blas threads: {args.blas_threads or 'default'}")
    print(f"{'N':>9} {'max_dist':>8} {'load s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for n in (int(s) for s in args.sizes.split(",")):
        for max_distance in (None, 0.6):
            r = bench(n, args.queries, args.k, max_distance)
            label = "-" if max_distance is None else f"{max_distance}"
            print(f"{n:>9} {label:>8} {r['load_s']:>7.2f} {r['p50']:>8.2f} {r['p99']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
