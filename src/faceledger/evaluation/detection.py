"""Detection recall against hand-boxed faces, and face counts against stated counts.

An annotated face counts as found when the centre of its box lies inside a
detected box (the peer benchmark's rule), each detection matching at most one
annotation.
"""

from __future__ import annotations

import csv
import json
import os
import time

from ..engine import Engine
from ..errors import InvalidParameterError
from ..imaging import read_image_file


def _found(gts: list[list[float]], boxes: list[tuple[float, float, float, float]]) -> int:
    used: set[int] = set()
    hits = 0
    for x, y, w, h in gts:
        cx, cy = x + w / 2, y + h / 2
        for i, (left, top, right, bottom) in enumerate(boxes):
            if i not in used and left <= cx <= right and top <= cy <= bottom:
                used.add(i)
                hits += 1
                break
    return hits


def annotated_recall(engine: Engine, annotations: str, root: str) -> dict:
    try:
        with open(annotations) as fh:
            items = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InvalidParameterError(f"Cannot read annotations {annotations}: {exc}.") from exc
    total = found = detections = 0
    per_image = []
    seconds = 0.0
    for item in items:
        pixels = read_image_file(os.path.join(root, item["image"])).pixels
        t0 = time.perf_counter()
        boxes = [d.box for d in engine.find(pixels)]
        seconds += time.perf_counter() - t0
        gts = item["boxes_xywh"]
        hit = _found(gts, boxes)
        total, found, detections = total + len(gts), found + hit, detections + len(boxes)
        per_image.append({"image": item["image"], "annotated": len(gts), "found": hit, "detections": len(boxes)})
    return {"annotated_faces": total, "found": found, "recall": round(found / max(total, 1), 4),
            "detections": detections, "ms_per_image": round(1000 * seconds / max(len(items), 1), 1),
            "images": per_image}


def stated_counts(engine: Engine, csv_path: str, root: str) -> dict:
    rows: list[dict] = []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            stated = row.get("face_count_stated_by_source") or ""
            pixels = read_image_file(os.path.join(root, row["file"])).pixels
            t0 = time.perf_counter()
            n = len(engine.find(pixels))
            ms = round(1000 * (time.perf_counter() - t0), 1)
            rows.append({"image": row["file"], "stated": int(stated) if stated else None, "detected": n, "ms": ms})
    counted = [r for r in rows if r["stated"] is not None]
    return {
        "images": rows,
        "stated_faces": sum(r["stated"] for r in counted),
        "found_in_counted": sum(min(r["detected"], r["stated"]) for r in counted),
    }
