"""What the service costs over the bare engine: a real server, real boto3 clients, real SigV4.

``run_api_bench`` starts ``faceledger serve`` as a subprocess on a free port
with a temporary data directory (removed afterwards), indexes a set of images
into one collection, then for each concurrency level ``c`` runs ``c`` threads,
each with its own boto3 client (standard retries), doing
SearchFacesByImage calls against that collection, and separately IndexFaces
calls into a second collection. Per operation and level it reports requests/s,
p50/p99 latency, errors, and throttles (final ``ThrottlingException``) apart
from other errors, plus the retries boto3 made on the way.

The bare-engine baseline runs on the same images, once before and once after
the search runs (to bracket drift in the machine's load): the same number of
worker processes, each with an :class:`Engine` loaded
before the clock starts, decoding and analysing exactly as the service does
for a search (``max_faces=1``). The service's overhead is
``1 - service search req/s at saturation / bare engine images/s``, where
saturation is the best level with at least as many clients as workers; at
one client, the service's p50 latency is set against the bare engine's p50
per image. The aim is an overhead under 10 %.

Everything runs on one machine, so the client threads (signing, encoding)
take CPU from the workers too; ``client_cpu_s`` says how much. On a shared
machine other jobs disturb wall-clock figures: with ``repeats`` each level
and each baseline run is repeated and the best pass counts, and the CPU
figures (server process tree per request against the bare worker per image)
give an overhead that other load barely moves. ``other_cpu_s`` is the CPU
the rest of the machine used during a pass (from /proc/stat): near zero
means the pass was undisturbed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.engine import EngineSettings
from ..engine.packs import store_dir
from ..settings import Settings
from .bare import BareEngine, summarise_bare
from .bare import percentile_ms as _percentile_ms
from .embedding import image_paths
from .server import BenchSetupError, ServerProcess, machine_busy_s, start_server
from .server import other_cpu as _other

OVERHEAD_AIM = 0.10
THROTTLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException",
                            "LimitExceededException"})
SEARCH_COLLECTION = "bench-search"
INDEX_COLLECTION = "bench-index"
REPO = Path(__file__).resolve().parents[3]


def default_images_dir() -> Path:
    """``$FACELEDGER_DATA/lfw_dev``; ``FACELEDGER_DATA`` defaults to ``<repo>/../shared/data``."""
    return Path(os.environ.get("FACELEDGER_DATA", REPO.parent / "shared" / "data")) / "lfw_dev"


def load_images(images_dir: str | Path | None, limit: int) -> tuple[Path, list[tuple[str, bytes]]]:
    """The first ``limit`` images (sorted by path) as ``(name, bytes)``; clear error when absent."""
    root = Path(images_dir) if images_dir else default_images_dir()
    if not root.is_dir():
        raise BenchSetupError(
            f"image folder {root} does not exist: pass --images DIR or set FACELEDGER_DATA "
            f"to the shared data folder (the one holding lfw_dev/).")
    paths = image_paths(str(root), limit)
    if not paths:
        raise BenchSetupError(f"no images under {root}.")
    out = []
    for p in paths:
        name = re.sub(r"[^a-zA-Z0-9_.\-:]", "_", os.path.relpath(p, root))[:255]
        out.append((name, Path(p).read_bytes()))
    return root, out


# -- the load ------------------------------------------------------------------

@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    throttled: int = 0
    retries: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def _call(fn: Callable[[], dict], tally: _Tally) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    t = time.perf_counter()
    try:
        out = fn()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        tally.retries += int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        tally.codes[code] = tally.codes.get(code, 0) + 1
        if code in THROTTLE_CODES:
            tally.throttled += 1
        else:
            tally.errors += 1
        return
    except BotoCoreError as exc:  # connection refused/reset, read timeout...
        code = type(exc).__name__
        tally.codes[code] = tally.codes.get(code, 0) + 1
        tally.errors += 1
        return
    tally.latencies.append(time.perf_counter() - t)
    tally.retries += int(out.get("ResponseMetadata", {}).get("RetryAttempts", 0))


@dataclass
class _Pass:
    tallies: list[_Tally]
    wall: float
    client_cpu: float
    server_cpu: float | None
    other_cpu: float | None

    @property
    def ok(self) -> int:
        return sum(len(t.latencies) for t in self.tallies)


def _one_pass(server: ServerProcess, boto: list[Any], operation: str, per_client: int,
              images: Sequence[tuple[str, bytes]], tag: str) -> _Pass:
    clients = len(boto)
    tallies = [_Tally() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def request(c: int, i: int) -> Callable[[], dict]:
        name, data = images[(c * per_client + i) % len(images)]
        if operation == "SearchFacesByImage":
            return lambda: boto[c].search_faces_by_image(CollectionId=SEARCH_COLLECTION,
                                                         Image={"Bytes": data})
        ext = f"{tag}{c}-{i}-{name}"[:255]
        return lambda: boto[c].index_faces(CollectionId=INDEX_COLLECTION, Image={"Bytes": data},
                                           ExternalImageId=ext)

    def worker(c: int) -> None:
        barrier.wait()
        for i in range(per_client):
            _call(request(c, i), tallies[c])

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    cpu0, server_cpu0, busy0 = time.process_time(), server.cpu_seconds(), machine_busy_s()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu, server_cpu1, busy1 = time.process_time() - cpu0, server.cpu_seconds(), machine_busy_s()
    server_cpu = server_cpu1 - server_cpu0 if server_cpu0 is not None and server_cpu1 is not None else None
    return _Pass(tallies, wall, cpu, server_cpu,
                 _other(busy0, busy1, None if server_cpu is None else server_cpu + cpu))


def run_level(server: ServerProcess, operation: str, clients: int, per_client: int,
              images: Sequence[tuple[str, bytes]], *, repeats: int = 1, level_tag: str = "") -> dict:
    """``clients`` threads, each with its own boto3 client, ``per_client`` calls each, ``repeats`` times.

    req/s is the best pass's (the least disturbed by anything else on the
    machine); latencies are pooled over every pass. CPU per request is the
    server's (process tree: HTTP, signatures, dispatch, engine workers) and
    this process's (the clients), over every pass.
    """
    boto = [server.client(max_pool_connections=2) for _ in range(clients)]
    for b in boto:  # one untimed call per client: connection set up, credentials resolved
        _call(b.list_collections, _Tally())
    passes = [_one_pass(server, boto, operation, per_client, images, f"{level_tag}r{r}-")
              for r in range(repeats)]
    tallies = [t for p in passes for t in p.tallies]
    lat = [x for tally in tallies for x in tally.latencies]
    codes: dict[str, int] = {}
    for tally in tallies:
        for k, v in tally.codes.items():
            codes[k] = codes.get(k, 0) + v
    rates = [p.ok / p.wall for p in passes if p.wall > 0]
    ok = len(lat)
    server_cpu = None if any(p.server_cpu is None for p in passes) else sum(p.server_cpu or 0 for p in passes)
    client_cpu = sum(p.client_cpu for p in passes)
    return {
        "operation": operation, "clients": clients, "requests": clients * per_client * repeats,
        "ok": ok, "errors": sum(x.errors for x in tallies), "throttled": sum(x.throttled for x in tallies),
        "retries": sum(x.retries for x in tallies), "error_codes": codes,
        "seconds": round(sum(p.wall for p in passes), 3),
        "requests_per_s": round(max(rates), 3) if rates and max(rates) > 0 else None,
        "requests_per_s_passes": [round(r, 3) for r in rates],
        "other_cpu_s_passes": [p.other_cpu for p in passes],
        "p50_ms": _percentile_ms(lat, 50), "p99_ms": _percentile_ms(lat, 99),
        "mean_ms": round(1000 * sum(lat) / ok, 2) if ok else None,
        "client_cpu_s": round(client_cpu, 3),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
        "client_cpu_ms_per_request": round(1000 * client_cpu / ok, 2) if ok else None,
        "server_cpu_ms_per_request": (round(1000 * server_cpu / ok, 2)
                                      if ok and server_cpu is not None else None),
    }


# -- the whole benchmark ---------------------------------------------------------

def _index_all(server: ServerProcess, images: Sequence[tuple[str, bytes]], threads: int) -> list[int]:
    """Index every image into the search collection; the positions of those that had a face."""
    local = threading.local()

    def one(i: int) -> bool:
        if not hasattr(local, "client"):
            local.client = server.client()
        name, data = images[i]
        try:
            out = local.client.index_faces(CollectionId=SEARCH_COLLECTION, Image={"Bytes": data},
                                           ExternalImageId=name)
        except Exception:  # noqa: BLE001 - an unreadable image is just not used
            return False
        return bool(out.get("FaceRecords"))

    with ThreadPoolExecutor(max(1, threads)) as ex:
        ok = list(ex.map(one, range(len(images))))
    return [i for i, good in enumerate(ok) if good]


def overhead(service_levels: list[dict], bare: dict, workers: int) -> dict:
    """Service overhead at saturation, by wall clock and by CPU, and the added latency at one client.

    ``overhead`` is ``1 - service req/s / bare images/s`` at the saturating
    level (the best level with at least ``workers`` clients). ``cpu_overhead``
    is the same figure for CPU-bound work on the same cores,
    ``1 - bare CPU per image / server CPU per request``, which the machine's
    other load disturbs far less; ``cpu_overhead_with_clients`` also counts
    the boto3 clients' CPU, which shares the cores in this set-up.
    """
    usable = [r for r in service_levels if r["requests_per_s"]]
    saturating = [r for r in usable if r["clients"] >= workers] or usable
    best = max(saturating, key=lambda r: r["requests_per_s"]) if saturating else None
    one = next((r for r in usable if r["clients"] == 1), None)
    out: dict[str, Any] = {"aim_below": OVERHEAD_AIM}
    if best is not None and bare["images_per_s"]:
        ratio = best["requests_per_s"] / bare["images_per_s"]
        out.update(saturating_clients=best["clients"], service_requests_per_s=best["requests_per_s"],
                   bare_images_per_s=bare["images_per_s"], overhead=round(1 - ratio, 4),
                   met=bool(1 - ratio < OVERHEAD_AIM))
        server_cpu, client_cpu = best["server_cpu_ms_per_request"], best["client_cpu_ms_per_request"]
        if server_cpu and bare.get("cpu_ms_per_image"):
            out.update(bare_cpu_ms_per_image=bare["cpu_ms_per_image"], server_cpu_ms_per_request=server_cpu,
                       client_cpu_ms_per_request=client_cpu,
                       cpu_overhead=round(1 - bare["cpu_ms_per_image"] / server_cpu, 4),
                       cpu_overhead_with_clients=round(
                           1 - bare["cpu_ms_per_image"] / (server_cpu + (client_cpu or 0)), 4))
    if one is not None and one["p50_ms"] is not None and bare["p50_ms"]:
        out.update(c1_service_p50_ms=one["p50_ms"], bare_p50_ms=bare["p50_ms"],
                   c1_latency_ratio=round(one["p50_ms"] / bare["p50_ms"], 3),
                   c1_added_ms=round(one["p50_ms"] - bare["p50_ms"], 2))
    return out


def engine_settings(data_dir: Path | None = None) -> EngineSettings:
    """The engine settings ``faceledger serve`` would use, from the same environment."""
    s = Settings.from_env()
    return EngineSettings(detector=s.detector, landmarks68=s.landmarks68, min_face_px=s.min_face_px,
                          cpu_budget_s=s.engine_cpu_budget_s, landmarker=s.landmarker, model=s.model,
                          model_store=str(store_dir(data_dir or s.data_dir)))


def _service_runs(tmp: Path, images: Sequence[tuple[str, bytes]], clients: Sequence[int],
                  per_client: int, workers: int, repeats: int, say: Callable[[str], None],
                  pack_folder: Path | None = None) -> dict:
    """Server up, images indexed; the bare engine measured before and after the searches.

    The baseline brackets the service's search runs (the server's workers sit
    idle meanwhile, and the baseline's while the service runs), so a change in
    the machine's background load shows as a spread between its two runs.
    """
    t = time.perf_counter()
    if pack_folder is not None:  # the pack (and its tables) in the temporary data folder's model store
        store = store_dir(tmp / "data")
        store.mkdir(mode=0o700, parents=True)
        shutil.copytree(pack_folder, store / pack_folder.name)
        os.environ["FACELEDGER_MODEL"] = pack_folder.name  # the server and the bare baseline read it
    server = start_server(tmp / "data", workers, tmp / "server.log")
    start_s = time.perf_counter() - t
    try:
        admin = server.client()
        admin.create_collection(CollectionId=SEARCH_COLLECTION)
        admin.create_collection(CollectionId=INDEX_COLLECTION)
        say(f"server up in {start_s:.1f} s; indexing {len(images)} images")
        t = time.perf_counter()
        with_face = _index_all(server, images, workers)
        index_s = time.perf_counter() - t
        faces = admin.describe_collection(CollectionId=SEARCH_COLLECTION)["FaceCount"]
        if not with_face:
            raise BenchSetupError(f"none of the {len(images)} images had a face.")
        probes = [images[i] for i in with_face]
        data = [d for _, d in probes]
        settings = engine_settings(tmp / "data")
        n_bare = max(clients) * per_client
        search, index = [], []
        with BareEngine(workers, settings) as bare:
            bare.warm_up(data)
            say(f"bare engine baseline ({workers} workers), before")
            # the same images, in the same order, as the first client of each level sends
            lat1, trip1 = bare.latency(data, per_client)
            runs = [bare.throughput(data, n_bare) for _ in range(repeats)]
            for c in clients:
                say(f"SearchFacesByImage, {c} clients")
                search.append(run_level(server, "SearchFacesByImage", c, per_client, probes,
                                        repeats=repeats))
            say("bare engine baseline, after")
            runs.extend(bare.throughput(data, n_bare) for _ in range(repeats))
            lat2, trip2 = bare.latency(data, per_client)
        for c in clients:
            say(f"IndexFaces, {c} clients")
            index.append(run_level(server, "IndexFaces", c, per_client, probes, repeats=repeats,
                                   level_tag=f"c{c}-"))
    finally:
        server.stop()
    return {"probes": probes, "server_start_s": round(start_s, 2), "index_setup_s": round(index_s, 2),
            "faces_indexed": faces, "search": search, "index": index,
            "bare": summarise_bare(workers, settings, runs, lat1 + lat2, trip1 + trip2)}


def run_api_bench(*, images_dir: str | None, limit: int, clients: Sequence[int], per_client: int,
                  workers: int, repeats: int = 1, progress: Callable[[str], None] | None = None,
                  pack_folder: Path | None = None) -> dict:
    """The whole benchmark; returns the report ``bench api`` prints."""
    if min(limit, per_client, workers, repeats) < 1 or not clients or min(clients) < 1:
        raise BenchSetupError("--limit, --requests-per-client, --workers, --repeats and --clients "
                              "must be positive.")
    say = progress or (lambda _msg: None)
    root, images = load_images(images_dir, limit)
    load_start = list(os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="faceledger-bench-api-"))
    t_all = time.perf_counter()
    before = os.environ.get("FACELEDGER_MODEL")
    try:
        svc = _service_runs(tmp, images, clients, per_client, workers, repeats, say, pack_folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if pack_folder is not None:  # _service_runs set it for the server it started
            if before is None:
                os.environ.pop("FACELEDGER_MODEL", None)
            else:
                os.environ["FACELEDGER_MODEL"] = before
    return {
        "benchmark": "api",
        "images_dir": str(root), "images": len(images), "images_with_face": len(svc["probes"]),
        "faces_indexed": svc["faces_indexed"], "index_setup_s": svc["index_setup_s"],
        "server_start_s": svc["server_start_s"],
        "workers": workers, "clients": list(clients), "requests_per_client": per_client,
        "repeats": repeats, "machine": {"cpus": os.cpu_count(), "load_avg_start": load_start,
                    "load_avg_end": list(os.getloadavg())},
        "service": {"SearchFacesByImage": svc["search"], "IndexFaces": svc["index"]},
        "bare_engine": svc["bare"],
        "overhead": overhead(svc["search"], svc["bare"], workers),
        "seconds": round(time.perf_counter() - t_all, 2),
    }


def format_report(r: dict) -> str:
    """The report as a short text table."""
    lines = [f"# {r['images']} images ({r['images_with_face']} with a face), {r['workers']} workers, "
             f"{r['machine']['cpus']} CPUs, load {r['machine']['load_avg_start'][0]:.2f}",
             f"{'operation':<20} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'errors':>6} {'throttled':>9} {'retries':>7}  other CPU s (per pass)"]
    for op in ("SearchFacesByImage", "IndexFaces"):
        for x in r["service"][op]:
            lines.append(f"{op:<20} {x['clients']:>7} {x['requests_per_s'] or 0:>8.2f} "
                         f"{x['p50_ms'] or 0:>8.1f} {x['p99_ms'] or 0:>8.1f} {x['errors']:>6} "
                         f"{x['throttled']:>9} {x['retries']:>7}  {x['other_cpu_s_passes']}")
    b, o = r["bare_engine"], r["overhead"]
    lines.append(f"bare engine: {b['images_per_s']:.2f} images/s with {b['workers']} workers "
                 f"(runs {', '.join(str(x['images_per_s']) for x in b['runs'])}; other CPU s "
                 f"{[x['other_cpu_s'] for x in b['runs']]}), "
                 f"p50 {b['p50_ms']} ms per image")
    if "overhead" in o:
        lines.append(f"overhead at {o['saturating_clients']} clients: {100 * o['overhead']:.1f} % "
                     f"(aim < {100 * o['aim_below']:.0f} %: {'met' if o['met'] else 'NOT met'})")
    if "cpu_overhead" in o:
        lines.append(f"CPU per search: server {o['server_cpu_ms_per_request']} ms (+ client "
                     f"{o['client_cpu_ms_per_request']} ms) vs bare engine {o['bare_cpu_ms_per_image']} ms: "
                     f"CPU overhead {100 * o['cpu_overhead']:.1f} % "
                     f"({100 * o['cpu_overhead_with_clients']:.1f} % with the clients)")
    if "c1_latency_ratio" in o:
        lines.append(f"1 client: service p50 {o['c1_service_p50_ms']} ms vs bare {o['bare_p50_ms']} ms "
                     f"(x{o['c1_latency_ratio']}, +{o['c1_added_ms']} ms)")
    return "\n".join(lines)
