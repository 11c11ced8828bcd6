"""SearchFacesByImage req/s with 1, 2 and 4 API processes on one store, in one run (issue #14).

One data directory (one catalog) is enrolled once with LFW images; then for
each process count N, ``faceledger serve --processes N`` (engine workers per
process: the default, the cores shared out, at least one) serves it on a free
port, and ``C`` boto3 client threads send SearchFacesByImage for the same
probes (``evaluation.apibench.run_level``: best of ``--repeats`` passes,
p50/p99 over all). ``other_cpu_s`` is the CPU the rest of the machine used
during each pass: on a shared machine it says how disturbed a figure is.
Usage: PYTHONPATH=src .venv/bin/python scripts/bench_processes.py [--processes 1 2 4] [--clients 8]
       [--per-client 12] [--repeats 2] [--images 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from faceledger.evaluation.apibench import _index_all, load_images, run_level
from faceledger.evaluation.server import (
    SERVE,
    BenchSetupError,
    ServerProcess,
    admin_key,
    free_port,
    tail,
)
from faceledger.service.core import default_workers


def start(data: Path, processes: int, log: Path, timeout_s: float = 300) -> ServerProcess:
    """``serve --processes N``; returns once N distinct API processes have answered /health."""
    port = free_port()
    with open(log, "w") as fh:
        proc = subprocess.Popen([*SERVE, "--processes", str(processes), "--port", str(port), "--data", str(data)],
                                stdout=fh, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    pids: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(pids) < processes:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchSetupError(f"serve --processes {processes} did not come up: {tail(log)}")
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=5) as r:
                pids.add(int(json.loads(r.read())["engine"]["api_pid"]))
        except OSError:
            time.sleep(0.3)
    key, secret, region = admin_key(data)
    return ServerProcess(proc, endpoint, key, secret, region, log)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()
    _, images = load_images(None, args.images)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fl-bench-procs-") as tmp:
        data = Path(tmp) / "data"
        usable: list[tuple[str, bytes]] = []
        for n in args.processes:
            server = start(data, n, Path(tmp) / f"serve-{n}.log")
            try:
                if not usable:
                    server.client().create_collection(CollectionId="bench-search")
                    usable = [images[i] for i in _index_all(server, images, 2)]
                level = run_level(server, "SearchFacesByImage", args.clients, args.per_client, usable,
                                  repeats=args.repeats, level_tag=f"p{n}-")
            finally:
                server.stop()
            row = {"processes": n, "workers_per_process": default_workers(n), **level}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("processes", "workers_per_process", "requests_per_s",
                                                  "requests_per_s_passes", "p50_ms", "p99_ms", "errors",
                                                  "throttled", "other_cpu_s_passes",
                                                  "server_cpu_ms_per_request")}), flush=True)
    out = {"cpus": os.cpu_count(), "clients": args.clients, "per_client": args.per_client,
           "repeats": args.repeats, "gallery": len(usable), "levels": rows}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    print("| API processes | engine workers each | req/s (best pass) | passes | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['processes']} | {r['workers_per_process']} | {r['requests_per_s']} | "
              f"{r['requests_per_s_passes']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")


if __name__ == "__main__":
    sys.exit(main())
