"""Transport load figures: a burst of concurrent calls, and a timed mixed load.

Starts ``faceledger serve`` (through ``faceledger.evaluation.apibench``, so it
runs whatever ``faceledger`` is first on PYTHONPATH: run it once with the old
tree and once with the new for before/after), indexes ``--limit`` images, then:

* ``burst``: ``--burst`` threads, each with its own boto3 client in the
  default (legacy) retry mode, each sending one DetectFaces at the same
  instant, ``--bursts`` times. Reports failures by code and p50/p99.
* ``mixed``: for each level in ``--clients``, that many threads with their own
  default-retry boto3 clients for ``--seconds``, alternating
  SearchFacesByImage and IndexFaces. Reports req/s, p50/p99 and errors by code
  per operation.

Bounded on purpose (the machine is shared): every phase ends by the clock.

    PYTHONPATH=src python scripts/bench_transport_load.py --clients 16,32 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.evaluation.apibench import (
    INDEX_COLLECTION,
    SEARCH_COLLECTION,
    _index_all,
    load_images,
    start_server,
)


def _client(server: Any) -> Any:
    import boto3
    from botocore.config import Config

    # The SDK's defaults (legacy retry mode, 5 attempts); only the pool is sized for one thread.
    return boto3.session.Session().client(
        "rekognition", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.key, aws_secret_access_key=server.secret,
        config=Config(max_pool_connections=2),
    )


def _timed(fn: Any, lat: list[float], codes: dict[str, int], lock: threading.Lock) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    t = time.perf_counter()
    try:
        fn()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
    except BotoCoreError as exc:
        code = type(exc).__name__
    else:
        with lock:
            lat.append(time.perf_counter() - t)
        return
    with lock:
        codes[code] = codes.get(code, 0) + 1


def _summary(lat: list[float], codes: dict[str, int], wall: float) -> dict:
    ms = np.asarray(lat) * 1000
    return {"ok": len(lat), "failed": sum(codes.values()), "errors_by_code": codes,
            "requests_per_s": round(len(lat) / wall, 2) if wall else None,
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if lat else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if lat else None,
            "max_ms": round(float(ms.max()), 1) if lat else None}


def burst(server: Any, images: list[bytes], n: int, bursts: int) -> dict:
    clients = [_client(server) for _ in range(n)]
    for c in clients:
        c.list_collections()
    lat: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()
    for _ in range(bursts):
        barrier = threading.Barrier(n)

        def one(i: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            _timed(lambda: clients[i].detect_faces(Image={"Bytes": images[i % len(images)]}),
                   lat, codes, lock)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"concurrent": n, "bursts": bursts, **_summary(lat, codes, time.perf_counter() - t0),
            "load_avg_1m_end": round(os.getloadavg()[0], 2)}


def flood(server: Any, images: list[bytes], idle: int, calls: int) -> dict:
    """Signed DetectFaces, one at a time, while ``idle`` sockets from 127.0.0.1 sit silent and as
    many more send ``POST /`` with ``Content-Length: 10`` and no body (the issue's attack)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(server.endpoint)
    addr = (parts.hostname, parts.port)
    junk: list[socket.socket] = []
    opened = 0
    try:
        for i in range(2 * idle):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(addr)
                if i % 2:
                    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
                opened += 1
            except OSError:
                s.close()
                continue
            junk.append(s)
        client = _client(server)
        lat: list[float] = []
        codes: dict[str, int] = {}
        lock = threading.Lock()
        t0 = time.perf_counter()
        for i in range(calls):
            _timed(lambda i=i: client.detect_faces(Image={"Bytes": images[i % len(images)]}), lat, codes, lock)
        wall = time.perf_counter() - t0
    finally:
        for s in junk:
            s.close()
    return {"junk_sockets": opened, "signed_calls": calls, **_summary(lat, codes, wall),
            "load_avg_1m_end": round(os.getloadavg()[0], 2)}


def mixed(server: Any, probes: list[tuple[str, bytes]], n: int, seconds: float) -> dict:
    clients = [_client(server) for _ in range(n)]
    for c in clients:
        c.list_collections()
    ops = {"SearchFacesByImage": ([], {}), "IndexFaces": ([], {})}  # type: ignore[var-annotated]
    lock = threading.Lock()
    barrier = threading.Barrier(n + 1)
    deadline = [0.0]

    def worker(c: int) -> None:
        barrier.wait()
        i = 0
        while time.perf_counter() < deadline[0]:
            name, data = probes[(c * 7 + i) % len(probes)]
            if (c + i) % 2 == 0:
                lat, codes = ops["SearchFacesByImage"]
                fn = lambda data=data: clients[c].search_faces_by_image(  # noqa: E731
                    CollectionId=SEARCH_COLLECTION, Image={"Bytes": data})
            else:
                lat, codes = ops["IndexFaces"]
                fn = lambda data=data, i=i: clients[c].index_faces(  # noqa: E731
                    CollectionId=INDEX_COLLECTION, Image={"Bytes": data},
                    ExternalImageId=f"m{n}-{c}-{i}")
            _timed(fn, lat, codes, lock)
            i += 1

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(n)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"clients": n, "seconds": round(wall, 1)}
    all_lat: list[float] = []
    all_codes: dict[str, int] = {}
    for op, (lat, codes) in ops.items():
        out[op] = _summary(lat, codes, wall)
        all_lat += lat
        for k, v in codes.items():
            all_codes[k] = all_codes.get(k, 0) + v
    out["all"] = _summary(all_lat, all_codes, wall)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)  # other jobs on the machine disturb the figures
    cpu1 = server.cpu_seconds()
    if cpu0 is not None and cpu1 is not None and all_lat:
        # server process tree (HTTP, SigV4, engine workers): what other load barely moves
        out["server_cpu_ms_per_ok_request"] = round(1000 * (cpu1 - cpu0) / len(all_lat), 1)
    return out


def js_burst(server: Any, images: str | None, n: int, bursts: int, modules: str) -> dict:
    """The same burst from the AWS SDK for JavaScript v3 with its default retries (node)."""
    import subprocess

    from faceledger.evaluation.apibench import default_images_dir

    script = Path(__file__).with_name("bench_transport_burst.mjs")
    # ESM resolves packages from the script's own folder up (not NODE_PATH): run a copy placed
    # in the folder that holds node_modules/@aws-sdk/client-rekognition.
    copy = Path(modules).resolve() / f".bench_transport_burst_{os.getpid()}.mjs"
    shutil.copyfile(script, copy)
    env = {**os.environ, "ENDPOINT": server.endpoint, "KEY": server.key, "SECRET": server.secret,
           "IMAGES": str(images or default_images_dir()), "N": str(n), "BURSTS": str(bursts)}
    try:
        out = subprocess.run(["node", str(copy)], env=env, capture_output=True, text=True, timeout=600)
    finally:
        copy.unlink(missing_ok=True)
    if out.returncode != 0:
        return {"sdk": "aws-sdk-js-v3", "error": out.stderr[-500:]}
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=None)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--clients", default="16,32")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--flood", type=int, default=0, help="idle sockets (and as many bodyless POSTs)")
    ap.add_argument("--flood-calls", type=int, default=20)
    ap.add_argument("--js", action="store_true",
                    help="also the burst from the AWS SDK for JavaScript v3 (scripts/bench_transport_burst.mjs)")
    ap.add_argument("--js-modules", default=".",
                    help="folder where `npm install @aws-sdk/client-rekognition` was run")
    ap.add_argument("--skip-burst", action="store_true")
    ap.add_argument("--skip-mixed", action="store_true")
    args = ap.parse_args()
    _, images = load_images(args.images, args.limit)
    tmp = Path(tempfile.mkdtemp(prefix="faceledger-transport-load-"))
    report: dict[str, Any] = {"workers": args.workers}
    try:
        server = start_server(tmp / "data", args.workers, tmp / "server.log")
        try:
            admin = _client(server)
            admin.create_collection(CollectionId=SEARCH_COLLECTION)
            admin.create_collection(CollectionId=INDEX_COLLECTION)
            with_face = _index_all(server, images, args.workers)
            probes = [images[i] for i in with_face]
            if args.flood:
                report["flood"] = flood(server, [d for _, d in probes], args.flood, args.flood_calls)
                print(json.dumps(report["flood"]), flush=True)
            if not args.skip_burst:
                report["burst"] = burst(server, [d for _, d in probes], args.burst, args.bursts)
                print(json.dumps(report["burst"]), flush=True)
            if args.js:
                report["js_burst"] = js_burst(server, args.images, args.burst, args.bursts, args.js_modules)
                print(json.dumps(report["js_burst"]), flush=True)
            if not args.skip_mixed:
                report["mixed"] = []
                for n in (int(x) for x in args.clients.split(",") if x):
                    report["mixed"].append(mixed(server, probes, n, args.seconds))
                    print(json.dumps(report["mixed"][-1]), flush=True)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
