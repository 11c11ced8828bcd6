"""Exact k-NN search latency of the in-memory :class:`VectorIndex` on synthetic vectors.

Synthetic unit-norm 128-d float32 vectors scaled by 0.8 (about the norm of
dlib descriptors), single-vector queries, ``k`` nearest (default 10), with
no distance limit and with a limit of 0.6 (dlib's usual match distance).
BLAS is limited to one thread, as the service does at start-up. Each size is
first checked against a float64 brute force on a few probes, so a fast but
wrong index fails loudly instead of reporting a figure.

Used by ``faceledger bench search`` and ``scripts/bench_search.py``.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence

import numpy as np

from ..errors import FaceledgerError
from ..store.vectors import DIM, VectorIndex, limit_blas_threads

TARGET_P50_MS = 50.0  # the aim: a million faces searched in under 50 ms (p50)
TARGET_SIZE = 1_000_000
_BLOCK = 100_000  # rows per block when generating and brute-forcing (bounds temporaries)


class SearchMismatchError(FaceledgerError):
    """The index returned something other than the exact nearest neighbours."""

    code = "SearchMismatch"


def synthetic_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random unit vectors times 0.8, float32, built in blocks to bound memory."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, _BLOCK):
        block = rng.standard_normal((min(_BLOCK, n - start), DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block * 0.8
    return out


def brute_force(mat: np.ndarray, q: np.ndarray, k: int, max_distance: float | None) -> list[int]:
    """Row numbers of the ``k`` nearest rows by float64 Euclidean distance (ties: lower row)."""
    q64 = q.astype(np.float64)
    dist = np.empty(mat.shape[0], dtype=np.float64)
    for start in range(0, mat.shape[0], _BLOCK):
        diff = mat[start : start + _BLOCK].astype(np.float64) - q64
        dist[start : start + len(diff)] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    order = np.argsort(dist, kind="stable")[:k]
    return [int(i) for i in order if max_distance is None or dist[i] <= max_distance]


def check_exact(index: VectorIndex, collection: str, ids: list[str], mat: np.ndarray,
                probes: np.ndarray, k: int, max_distance: float | None) -> int:
    """Compare the index with brute force on every probe; raises on the first difference."""
    for q in probes:
        want = [ids[i] for i in brute_force(mat, q, k, max_distance)]
        got = [face_id for face_id, _ in index.search(collection, q, k, max_distance)]
        if got != want:
            raise SearchMismatchError(
                f"search differs from brute force at N={len(ids)}, max_distance={max_distance}: "
                f"{got} != {want}")
    return len(probes)


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def bench_size(n: int, *, queries: int, k: int, max_distances: Sequence[float | None],
               checks: int = 3) -> list[dict]:
    """Latency of ``queries`` single-vector searches over ``n`` vectors, one row per max distance."""
    rng = np.random.default_rng(n)
    mat = synthetic_vectors(rng, n)
    ids = [f"{i:032x}" for i in range(n)]
    index = VectorIndex()
    t0 = time.perf_counter()
    index.load("bench", ids, mat)
    load_s = time.perf_counter() - t0
    probes = synthetic_vectors(rng, max(queries, checks))
    checked = {md: check_exact(index, "bench", ids, mat, probes[:checks], k, md) for md in max_distances}
    del mat
    rows = []
    for md in max_distances:
        for q in probes[:3]:  # warm-up: page in the matrix, warm the caches
            index.search("bench", q, k, md)
        times = np.empty(queries)
        for i, q in enumerate(probes[:queries]):
            t = time.perf_counter()
            index.search("bench", q, k, md)
            times[i] = time.perf_counter() - t
        rows.append({"size": n, "max_distance": md, "k": k, "queries": queries,
                     "load_s": round(load_s, 3), **_percentiles(times * 1000),
                     "checked_vs_brute_force": checked[md]})
    return rows


def run_search_bench(sizes: Sequence[int], *, queries: int = 200, k: int = 10,
                     max_distances: Sequence[float | None] = (None, 0.6), blas_threads: int = 1,
                     checks: int = 3) -> dict:
    """Every size x max distance; the report the ``bench search`` command prints."""
    if queries < 1 or k < 1 or any(n < 1 for n in sizes):
        raise ValueError("sizes, queries and k must be positive")
    limited = limit_blas_threads(blas_threads) if blas_threads > 0 else False
    results: list[dict] = []
    load_start = list(os.getloadavg())
    t0 = time.perf_counter()
    for n in sizes:
        results.extend(bench_size(n, queries=queries, k=k, max_distances=max_distances, checks=checks))
    at_target = [r for r in results if r["size"] == TARGET_SIZE and r["max_distance"] is None]
    return {
        "benchmark": "search",
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "load_avg_start": load_start,
                    "load_avg_end": list(os.getloadavg())},
        "blas_threads": blas_threads if limited else "default",
        "dim": DIM,
        "results": results,
        "target": {"size": TARGET_SIZE, "p50_ms_below": TARGET_P50_MS,
                   "p50_ms": at_target[0]["p50_ms"] if at_target else None,
                   "met": (at_target[0]["p50_ms"] < TARGET_P50_MS) if at_target else None},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def format_table(report: dict) -> str:
    """The report as a small text table."""
    m = report["machine"]
    lines = [f"# {m['cpu']}, {m['cpus']} CPUs, numpy {m['numpy']}, blas threads: {report['blas_threads']}, "
             f"load {m['load_avg_start'][0]:.2f}",
             f"{'N':>9} {'max_dist':>8} {'load s':>7} {'p50 ms':>8} {'p99 ms':>8}"]
    for r in report["results"]:
        label = "-" if r["max_distance"] is None else f"{r['max_distance']}"
        lines.append(f"{r['size']:>9} {label:>8} {r['load_s']:>7.2f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    t = report["target"]
    if t["met"] is not None:
        lines.append(f"target: N={t['size']} p50 {t['p50_ms']} ms < {t['p50_ms_below']} ms: "
                     f"{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines)
