"""The console's cost on a real server: render time of a search's page, and its share of server CPU.

    PYTHONPATH=src python scripts/bench_console.py --renders 40 --phase-s 8

Starts ``faceledger serve`` (``evaluation.server.start_server``, one engine
worker) on a throwaway data directory, enrols real faces from
``$FACELEDGER_DATA/lfw_dev`` (default ``<repo>/../shared/data``): the photos
of one person (the first, by name, of those with at least 12 photos) into a
collection without thumbnails and into one tagged ``faceledger:thumbnails``,
then runs one SearchFacesByImage with MaxFaces=10 in each, so each search has
10 candidates. A reviewer and an auditor key (``faceledger keys create``)
sign in to the console with a plain HTTP client (the sign-in form's CSRF
token and cookie, as a browser sends them).

(a) Render time: ``--renders`` GETs of ``/console/review/<SearchId>`` for each
search, one after another; median and p95 wall time over loopback, and the
server process tree's CPU per page. With thumbnails, also the page together
with its 11 images (probe and candidates), as a browser loads it. Then the
review queue, the report and the audit page (half as many GETs each).

(b) CPU share: a fixed SearchFacesByImage load (``--load-threads`` boto3
threads, each paced to ``--load-rate`` requests/s, or back to back with 0 as
``faceledger bench api`` runs them) into the no-thumbnail
collection, in four phases of ``--phase-s`` seconds: load alone, load with
one console client refreshing the review queue, the search's page, the report
and the audit page in a loop (without pause, or ``--console-pause`` seconds
after each page), then the same again in the other
order (with, alone). The console's share of the server's CPU in a phase with
console traffic is ``1 - searches_in_phase * cpu_per_search_alone /
server_cpu_in_phase``, where ``cpu_per_search_alone`` comes from the phases
without console traffic. Each search adds to the review queue, so the queue
page grows over the run (as it would with nobody deciding).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from faceledger.evaluation.apibench import default_images_dir
from faceledger.evaluation.server import ServerProcess, machine_busy_s, start_server

THUMBS = "review-thumbs"
PLAIN = "review-plain"


@dataclass
class Console:
    """A cookie-keeping HTTP client: what a browser sends the console, without one."""

    endpoint: str
    cookies: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, bytes]:
        u = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=60)
        body = urlencode(form).encode() if form is not None else None
        headers = {"Host": u.netloc}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie":
                c = SimpleCookie()
                c.load(v)
                for name, morsel in c.items():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        conn.close()
        return resp.status, raw

    def sign_in(self, key: tuple[str, str]) -> None:
        status, page = self.get("/console/signin")
        m = re.search(rb'name="token" value="([^"]*)"', page)
        if status != 200 or not m:
            raise SystemExit(f"sign-in page: {status}")
        status, _ = self.request("POST", "/console/signin", {
            "token": m.group(1).decode(), "next": "/console/", "access_key_id": key[0],
            "secret_access_key": key[1]})
        if status not in (200, 303) or "fl_session" not in self.cookies:
            raise SystemExit(f"sign-in failed: {status}")


def pick_person(root: Path, least: int) -> tuple[str, list[Path]]:
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(d.glob("*.jpg"))
        if least <= len(photos) <= least + 8:
            return d.name, photos
    raise SystemExit(f"no person with {least} to {least + 8} photos under {root}")


def make_key(data: Path, role: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-m", "faceledger.cli.main", "keys", "create", "--role", role,
                          "--label", f"bench-{role}", "--data", str(data), "--json"],
                         check=True, capture_output=True, text=True)
    doc = json.loads(out.stdout)
    return doc["AccessKeyId"], doc["SecretAccessKey"]


def search(srv: ServerProcess, collection: str, probe: bytes) -> tuple[int, int]:
    rek = srv.client()
    seen: dict = {}
    rek.meta.events.register("after-call.rekognition.*", lambda http_response, **_: seen.update(
        json.loads(http_response.content or b"{}").get("Faceledger", {})))
    out = rek.search_faces_by_image(CollectionId=collection, Image={"Bytes": probe}, MaxFaces=10)
    return int(seen["SearchId"]), len(out["FaceMatches"])


def ms(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median_ms": round(1000 * statistics.median(xs), 1),
            "p95_ms": round(1000 * xs[min(len(xs) - 1, int(0.95 * len(xs)))], 1), "n": len(xs)}


def render(srv: ServerProcess, client: Console, paths: list[str], n: int) -> dict:
    walls = []
    cpu0 = srv.cpu_seconds() or 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        for p in paths:
            status, _ = client.get(p)
            if status != 200:
                raise SystemExit(f"GET {p}: {status}")
        walls.append(time.perf_counter() - t0)
    out = ms(walls)
    out["server_cpu_ms"] = round(1000 * ((srv.cpu_seconds() or 0.0) - cpu0) / n, 1)
    return out


def face_paths(client: Console, search_id: int) -> list[str]:
    _, page = client.get(f"/console/review/{search_id}")
    found = re.findall(rf'src="(/console/review/{search_id}/[^"]+\.jpg)"', page.decode())
    return sorted(set(found))


def phase(srv: ServerProcess, probes: list[bytes], threads: int, rate: float, seconds: float,
          console: tuple[Console, Console, list[tuple[str, str]]] | None, pause: float = 0.0) -> dict:
    stop = threading.Event()
    counts = [0] * threads
    errors = [0]
    views = [0]
    clients = [srv.client() for _ in range(threads)]

    def load(i: int) -> None:
        nxt = time.monotonic()
        while not stop.is_set():
            try:
                clients[i].search_faces_by_image(CollectionId=PLAIN, Image={"Bytes": probes[counts[i] % len(probes)]},
                                                 MaxFaces=10)
                counts[i] += 1
            except Exception:  # noqa: BLE001 - counted, the run goes on
                errors[0] += 1
            if rate:
                nxt += 1 / rate
                time.sleep(max(0.0, nxt - time.monotonic()))

    def refresh() -> None:
        assert console is not None
        reviewer, auditor, pages = console
        while not stop.is_set():
            for who, p in pages:
                status, _ = (auditor if who == "auditor" else reviewer).get(p)
                if status != 200:
                    errors[0] += 1
                views[0] += 1
                if pause:
                    stop.wait(pause)

    workers = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
    if console:
        workers.append(threading.Thread(target=refresh))
    cpu0, busy0, t0 = srv.cpu_seconds() or 0.0, machine_busy_s(), time.monotonic()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    wall = time.monotonic() - t0
    cpu = (srv.cpu_seconds() or 0.0) - cpu0
    busy = (machine_busy_s() or 0.0) - (busy0 or 0.0)
    return {"console": console is not None, "wall_s": round(wall, 2), "searches": sum(counts),
            "console_views": views[0], "errors": errors[0], "server_cpu_s": round(cpu, 3),
            "machine_busy_s": round(busy, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--renders", type=int, default=40, help="GETs of each search's page")
    ap.add_argument("--phase-s", type=float, default=8.0, help="seconds per load phase (four phases)")
    ap.add_argument("--load-threads", type=int, default=2)
    ap.add_argument("--load-rate", type=float, default=1.5, help="SearchFacesByImage/s per load thread (0: back to back, as `faceledger bench api` does)")
    ap.add_argument("--console-pause", type=float, default=0.0,
                    help="seconds the console client waits after each page (0: refresh without pause)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(os.environ.get("FACELEDGER_DATA", "")) / "lfw_dev" if os.environ.get("FACELEDGER_DATA") \
        else default_images_dir()
    person, photos = pick_person(root, 12)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        srv = start_server(data, workers=1, log=Path(tmp) / "serve.log")
        try:
            rek = srv.client()
            rek.create_collection(CollectionId=PLAIN)
            rek.create_collection(CollectionId=THUMBS, Tags={"faceledger:thumbnails": "true"})
            enrolled = 0
            for p in photos[1:]:
                for coll in (PLAIN, THUMBS):
                    r = rek.index_faces(CollectionId=coll, Image={"Bytes": p.read_bytes()}, MaxFaces=1,
                                        ExternalImageId=p.stem)
                enrolled += bool(r["FaceRecords"])
            probe = photos[0].read_bytes()
            plain_id, plain_n = search(srv, PLAIN, probe)
            thumbs_id, thumbs_n = search(srv, THUMBS, probe)
            reviewer, auditor = Console(srv.endpoint), Console(srv.endpoint)
            reviewer.sign_in(make_key(data, "reviewer"))
            auditor.sign_in(make_key(data, "auditor"))
            images = face_paths(reviewer, thumbs_id)
            for sid, n in ((plain_id, plain_n), (thumbs_id, thumbs_n)):
                shown = reviewer.get(f"/console/review/{sid}")[1].count(b'<li class="candidate"')
                if shown != n or n != 10:
                    raise SystemExit(f"search {sid}: {n} candidates, its page shows {shown}; 10 wanted")
            if len(images) != 1 + thumbs_n:  # the probe and each candidate
                raise SystemExit(f"the thumbnail search's page shows {len(images)} images, not {1 + thumbs_n}")
            for client, path in ((reviewer, f"/console/review/{plain_id}"),
                                 (reviewer, f"/console/review/{thumbs_id}")):  # warm the templates
                client.get(path)
            out: dict = {"person": person, "enrolled_per_collection": enrolled,
                         "candidates": {"plain": plain_n, "thumbnails": thumbs_n},
                         "cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
            out["render"] = {
                "page_no_thumbnails": render(srv, reviewer, [f"/console/review/{plain_id}"], args.renders),
                "page_thumbnails": render(srv, reviewer, [f"/console/review/{thumbs_id}"], args.renders),
                "page_and_images_thumbnails": dict(render(
                    srv, reviewer, [f"/console/review/{thumbs_id}", *images],
                    max(5, args.renders // 4)), images=len(images)),
            }
            for name, client, path in (("review_queue", reviewer, "/console/review"),
                                       ("report", reviewer, "/console/report"),
                                       ("audit", auditor, "/console/audit")):
                client.get(path)
                out["render"][name] = render(srv, client, [path], max(5, args.renders // 2))
            pages = [("reviewer", "/console/review"), ("reviewer", f"/console/review/{plain_id}"),
                     ("reviewer", "/console/report"), ("auditor", "/console/audit")]
            loads = [p.read_bytes() for p in photos[:4]]
            phases = [phase(srv, loads, args.load_threads, args.load_rate, args.phase_s,
                            (reviewer, auditor, pages) if with_console else None, args.console_pause)
                      for with_console in (False, True, True, False)]
            alone = [ph for ph in phases if not ph["console"]]
            per_search = sum(ph["server_cpu_s"] for ph in alone) / max(1, sum(ph["searches"] for ph in alone))
            for ph in phases:
                ph["console_share"] = (round(1 - ph["searches"] * per_search / ph["server_cpu_s"], 3)
                                       if ph["console"] and ph["server_cpu_s"] else None)
            busy = [ph for ph in phases if ph["console"]]
            con_cpu = sum(ph["server_cpu_s"] - ph["searches"] * per_search for ph in busy)
            views = sum(ph["console_views"] for ph in busy)
            out["load"] = {"threads": args.load_threads, "rate_per_thread": args.load_rate,
                           "phase_s": args.phase_s, "phases": phases,
                           "server_cpu_ms_per_search_alone": round(1000 * per_search, 1),
                           "console_share": round(con_cpu / sum(p["server_cpu_s"] for p in busy), 3),
                           "server_cpu_ms_per_console_view": round(1000 * con_cpu / views, 1) if views else None}
        finally:
            srv.stop()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{person}: {enrolled} faces per collection, candidates {out['candidates']}, "
          f"{out['cpus']} CPUs, load {out['load_avg_start'][0]:.2f}")
    for k, v in out["render"].items():
        print(f"  {k:28} median {v['median_ms']} ms  p95 {v['p95_ms']} ms  server CPU {v['server_cpu_ms']} ms"
              f"  (n={v['n']})")
    for ph in out["load"]["phases"]:
        print(f"  phase console={ph['console']!s:5} {ph['wall_s']} s: {ph['searches']} searches, "
              f"{ph['console_views']} console views, server CPU {ph['server_cpu_s']} s, "
              f"share {ph['console_share']}, errors {ph['errors']}")
    ld = out["load"]
    print(f"  server CPU per search (alone) {ld['server_cpu_ms_per_search_alone']} ms; console share "
          f"{100 * ld['console_share']:.1f} %; {ld['server_cpu_ms_per_console_view']} ms server CPU per view")


if __name__ == "__main__":
    main()
