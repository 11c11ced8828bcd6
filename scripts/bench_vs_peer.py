#!/usr/bin/env python3
"""Throughput against the face_recognition peer, same images, same processes, same session.

Runs the peer (../shared/bench/peer_face_recognition.py, in its own virtual
environment) and ``faceledger bench throughput`` alternately, several times,
and prints one JSON object with each run and the median ratio.

    python scripts/bench_vs_peer.py --peer-python ../peer-env/bin/python \
        --root ../shared/data/lfw_dev --limit 600 --procs 2 --repeats 3 [--no-mirror] [--runtime fast]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", required=True)
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "lfw_dev"))
    ap.add_argument("--limit", type=int, default=600)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-mirror", action="store_true")
    ap.add_argument("--runtime", default="fast")
    ap.add_argument("--detector", default="hog")
    ap.add_argument("--landmarker", default="dlib5")
    a = ap.parse_args()
    peer_script = REPO.parent / "shared" / "bench" / "peer_face_recognition.py"
    ours_cmd = [sys.executable, "-m", "faceledger.cli.main", "bench", "throughput", a.root, "--limit", str(a.limit),
                "--procs", str(a.procs), "--json", "--quiet", "--runtime", a.runtime,
                "--detector", a.detector, "--landmarker", a.landmarker]
    if a.no_mirror:
        ours_cmd.append("--no-mirror")
    peer_cmd = [a.peer_python, str(peer_script), "throughput", a.root, "--limit", str(a.limit),
                "--procs", str(a.procs)]
    runs = []
    for _ in range(a.repeats):
        peer = run_json(peer_cmd)
        ours = run_json(ours_cmd)
        runs.append({"peer_images_per_s": peer["images_per_s"], "ours_images_per_s": ours["images_per_s"],
                     "peer_faces": peer["faces"], "ours_faces": ours["faces"],
                     "ratio": round(ours["images_per_s"] / peer["images_per_s"], 3),
                     "ours_peak_rss_mb": ours.get("peak_rss_mb")})
    print(json.dumps({
        "images": a.limit, "procs": a.procs, "mirror": not a.no_mirror, "runtime": a.runtime,
        "median_ratio": statistics.median(r["ratio"] for r in runs),
        "median_peer_images_per_s": statistics.median(r["peer_images_per_s"] for r in runs),
        "median_ours_images_per_s": statistics.median(r["ours_images_per_s"] for r in runs),
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
