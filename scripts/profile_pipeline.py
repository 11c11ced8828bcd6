#!/usr/bin/env python3
"""Where the time goes, per stage, for one process over N lfw_dev images (median ms per image).

    python scripts/profile_pipeline.py [--root ../shared/data/lfw_dev] [--limit 200] [--runtime fast|dlib]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from faceledger.engine import Engine, EngineSettings
from faceledger.engine.detect import detection_scale
from faceledger.engine.embed import describe, face_chip
from faceledger.engine.landmarks import points_to_shape
from faceledger.engine.quality import estimate_pose, measure_quality
from faceledger.evaluation.embedding import image_paths
from faceledger.imaging import decode_image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "lfw_dev"))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--runtime", default="fast")
    a = ap.parse_args()
    engine = Engine(EngineSettings(runtime=a.runtime))
    stages: dict[str, list[float]] = {k: [] for k in ("read", "decode", "detect", "landmarks", "chip", "embed_x2",
                                                       "pose_quality")}
    for path in image_paths(a.root, a.limit):
        t0 = time.perf_counter()
        data = Path(path).read_bytes()
        t1 = time.perf_counter()
        px = decode_image(data).pixels
        t2 = time.perf_counter()
        h, w = px.shape[:2]
        dets = engine.detector.detect(px, detection_scale(w, h))
        t3 = time.perf_counter()
        if not dets:
            continue
        pts = engine.landmarker5.points(px, dets[0].box)
        t4 = time.perf_counter()
        chip = face_chip(px, points_to_shape(pts, dets[0].box))
        t5 = time.perf_counter()
        describe(engine.embedder, chip[None], mirror=True)
        t6 = time.perf_counter()
        estimate_pose(pts)
        measure_quality(px, dets[0].box)
        t7 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6), strict=True):
            v_ms = v * 1000
            stages[k].append(v_ms)
    med = {k: round(statistics.median(v), 2) for k, v in stages.items()}
    total = sum(med.values())
    print(json.dumps({"runtime": a.runtime, "images": len(stages["read"]), "median_ms": med,
                      "total_ms": round(total, 2),
                      "share": {k: round(v / total, 3) for k, v in med.items()}}))


if __name__ == "__main__":
    main()
