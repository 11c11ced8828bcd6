"""Faces in successive sampled frames -> people (tracks) with stable indexes.

A face continues a track when it is near where the track was last seen
(overlapping boxes or close centres) and its descriptor is close (distance
under ``link_distance``), or, anywhere and at any later time, when its
descriptor is very close to the track's mean (under ``reid_distance``:
re-identification across cuts and absences). Assignment is greedy by distance,
at most one face per track per frame. Two people are kept apart rather than
merged when in doubt: a wrong merge would report one person's matches on
another's appearances.

Each track keeps its best faces by quality score (sharp, well exposed) for the
collection search. This module is pure: no engine, no store, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..engine.quality import quality_score
from ..engine.types import Face

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def near(a: Box, b: Box, min_iou: float = 0.1, centre_factor: float = 0.75, max_growth: float = 1.5) -> bool:
    """Same place and size, allowing for motion between samples.

    Boxes overlap, or their centres lie within 0.75 face widths; and neither is
    more than 1.5 times the size of the other (a cut to a close-up is not motion).
    """
    sa, sb = max(a[2] - a[0], a[3] - a[1]), max(b[2] - b[0], b[3] - b[1])
    if min(sa, sb) <= 0 or max(sa, sb) / min(sa, sb) > max_growth:
        return False
    if iou(a, b) >= min_iou:
        return True
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return math.dist(ca, cb) <= centre_factor * max(sa, sb)


@dataclass
class Track:
    index: int
    last_box: Box
    last_ms: int
    total: np.ndarray | None = None  # sum of descriptors (mean = total / count)
    count: int = 0
    best: list[tuple[float, int, np.ndarray, float]] = field(default_factory=list)  # (score, ms, descriptor, quality)

    def mean(self) -> np.ndarray | None:
        return None if self.total is None or not self.count else self.total / self.count

    def add(self, face: Face, ms: int, keep: int) -> None:
        self.last_box, self.last_ms = face.box, ms
        if face.descriptor is None:
            return
        d = np.asarray(face.descriptor, dtype=np.float32)
        self.total = d.copy() if self.total is None else self.total + d
        self.count += 1
        quality = quality_score(face.quality)
        self.best.append((quality * face.confidence / 100.0, ms, d, quality))
        self.best.sort(key=lambda t: -t[0])
        del self.best[keep:]

    def best_descriptors(self) -> list[np.ndarray]:
        return [d for _, _, d, _ in self.best]

    def best_qualities(self) -> list[float]:
        """The quality score (0-100) of each of ``best_descriptors``, for probe gating."""
        return [q for _, _, _, q in self.best]


class Tracker:
    """``update(ms, faces)`` -> the person index of each face, in order."""

    def __init__(self, *, gap_ms: int = 1500, link_distance: float = 0.6, reid_distance: float = 0.5,
                 keep_best: int = 3) -> None:
        self.gap_ms = gap_ms
        self.link_distance = link_distance
        self.reid_distance = reid_distance
        self.keep_best = keep_best
        self.tracks: list[Track] = []

    def _distance(self, track: Track, face: Face, ms: int) -> float | None:
        """Association cost, or None when the face cannot continue this track."""
        live = ms - track.last_ms <= self.gap_ms
        close = live and near(track.last_box, face.box)
        mean = track.mean()
        if face.descriptor is None or mean is None:
            return 1.0 if close else None  # position only (no descriptors: detection-only runs)
        d = float(np.linalg.norm(mean - face.descriptor))
        if close and d <= self.link_distance:
            return d - 0.1  # prefer continuity over an equally good match elsewhere
        return d if d <= self.reid_distance else None

    def update(self, ms: int, faces: list[Face]) -> list[int]:
        pairs = []
        for fi, face in enumerate(faces):
            for ti, track in enumerate(self.tracks):
                cost = self._distance(track, face, ms)
                if cost is not None:
                    pairs.append((cost, fi, ti))
        pairs.sort()
        out: list[int | None] = [None] * len(faces)
        taken: set[int] = set()
        for _, fi, ti in pairs:
            if out[fi] is None and ti not in taken:
                out[fi] = ti
                taken.add(ti)
        indexes = []
        for fi, face in enumerate(faces):
            found = out[fi]
            if found is None:
                self.tracks.append(Track(index=len(self.tracks), last_box=face.box, last_ms=ms))
                found = len(self.tracks) - 1
            self.tracks[found].add(face, ms, self.keep_best)
            indexes.append(self.tracks[found].index)
        return indexes
