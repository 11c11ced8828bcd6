#!/usr/bin/env python3
"""CPU milliseconds per image for each front end and the face_recognition peer, one process each.

On the shared 2-core machines wall-clock ratios swing 2-8x with other people's
load; process CPU time per image, with the pipelines interleaved in rounds on
the same images and BLAS held to one thread, is steadier. Every pipeline does
the whole job (decode, detect, landmarks, align, describe every face).

    PYTHONPATH=src python scripts/bench_frontends_cpu.py --peer-lib DIR [--root ../shared/data/lfw_dev] [--limit 200]

``--peer-lib`` is a folder where ``pip install --no-deps --target DIR face_recognition`` put the peer
(its other needs, dlib and face_recognition_models, are faceledger's own).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRONT_ENDS = (("hog", "dlib5"), ("blazeface", "dlib5"), ("blazeface", "facemesh"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-lib", required=True)
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "lfw_dev"))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    sys.path.insert(0, a.peer_lib)
    import face_recognition as fr
    from threadpoolctl import threadpool_limits

    from faceledger.engine.engine import Engine, EngineSettings
    from faceledger.evaluation.embedding import image_paths
    from faceledger.imaging import read_image_file

    def peer(path: str) -> int:
        im = fr.load_image_file(path)
        return len(fr.face_encodings(im, fr.face_locations(im)))

    def ours(engine: Engine) -> Callable[[str], int]:
        return lambda path: len(engine.analyze(read_image_file(path)))

    paths = image_paths(a.root, a.limit)
    fns: dict[str, Callable[[str], int]] = {"peer": peer}
    for det, lm in FRONT_ENDS:
        fns[f"{det}+{lm}"] = ours(Engine(EngineSettings(detector=det, landmarker=lm)))
    for fn in fns.values():
        fn(paths[0])  # warm up: first-call costs are not per-image costs
    ms: dict[str, list[float]] = {n: [] for n in fns}
    faces = dict.fromkeys(fns, 0)
    with threadpool_limits(1):
        for r in range(a.rounds):
            chunk = paths[r::a.rounds]
            for name, fn in fns.items():
                t0 = time.process_time()
                faces[name] += sum(fn(p) for p in chunk)
                ms[name].append(1000 * (time.process_time() - t0) / len(chunk))
    peer_ms = statistics.median(ms["peer"])
    print(json.dumps({"images": len(paths), "rounds": a.rounds, **{
        n: {"cpu_ms_per_image": round(statistics.median(v), 1), "rounds": [round(x, 1) for x in v],
            "faces": faces[n], "speedup_vs_peer": round(peer_ms / statistics.median(v), 2)}
        for n, v in ms.items()}}))


if __name__ == "__main__":
    main()
