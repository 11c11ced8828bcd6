"""Benchmark exact k-NN search of faceledger's in-memory VectorIndex.

Synthetic unit-norm 128-d float32 vectors (scaled like dlib descriptors),
single-vector queries, k=10. Prints p50/p99 latency per gallery size.
Each size is also checked against brute force on a few probes.
The logic lives in ``faceledger.evaluation.searchbench`` (also behind
``faceledger bench search``); this script is a thin wrapper.
Usage: .venv/bin/python scripts/bench_search.py [--sizes 10000,100000,1000000]
       [--blas-threads 1]   (0 leaves BLAS threading as numpy found it)
"""

from __future__ import annotations

import argparse

from faceledger.evaluation.searchbench import format_table, run_search_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report = run_search_bench(sizes, queries=args.queries, k=args.k, blas_threads=args.blas_threads)
    print(format_table(report))


if __name__ == "__main__":
    main()
