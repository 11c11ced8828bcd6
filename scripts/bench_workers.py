"""Benchmark the supervised engine pool: throughput, and how long a killed worker takes to be replaced.

Feeds LFW images (``$FACELEDGER_DATA/lfw_dev``) to ``EnginePool.analyze`` from
four threads on two workers (three rounds), then SIGKILLs an idle worker three
times and times until the pool has two live workers again.
Usage: PYTHONPATH=src .venv/bin/python scripts/bench_workers.py [--images 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path

from faceledger.engine import EngineSettings
from faceledger.service.workers import EnginePool


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(os.environ.get("FACELEDGER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    images = [p.read_bytes() for p in sorted((root / "lfw_dev").glob("A*/*_0001.jpg"))[: args.images]]
    started = time.perf_counter()
    pool = EnginePool(EngineSettings(), processes=args.workers)
    print(f"start: {time.perf_counter() - started:.1f} s for {args.workers} workers")
    try:
        pool.analyze(images[0])
        for _ in range(3):
            threads = [threading.Thread(target=lambda part: [pool.analyze(i) for i in part], args=(images[k::4],))
                       for k in range(4)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(f"throughput: {len(images) / (time.perf_counter() - t0):.1f} images/s")
        for n in range(3):
            pid = pool.pids()[0]
            assert pid is not None
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            while pool.state()["restarts"] <= n or pool.state()["alive"] < args.workers:
                time.sleep(0.01)
            print(f"killed worker replaced in {time.perf_counter() - t0:.2f} s")
    finally:
        pool.close()


if __name__ == "__main__":
    main()
