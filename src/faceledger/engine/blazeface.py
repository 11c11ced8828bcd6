"""BlazeFace (MediaPipe's face detector) behind the Detector protocol.

Two networks, as MediaPipe ships them: the full-range model (192x192 input)
finds faces down to about 15 px *in that input* but is unsure of close-ups
(it scores 0.26-0.49 on the 30 lfw_dev faces it misses, faces filling half
the image); the short-range model (128x128) is sure of close-ups (0.65-0.96
on those 30) and misses small faces. The detector runs both on the whole
image and, when the smallest wanted face would be under ``MIN_INPUT_FACE_PX``
of the full-range input, the full-range model again on overlapping square
tiles small enough that it is not. Hits from all passes are merged by
weighted non-maximum suppression (MediaPipe's own blending), in the
coordinates of the image passed in.

Each hit keeps BlazeFace's six keypoints (image-left eye, image-right eye,
nose tip, mouth centre, two ear tragions) so FaceMesh can place its crop the
way MediaPipe does. Confidence is the model's sigmoid score x 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .mediapipe_models import interpreter
from .types import Detection

# A face of s px is wanted once the image is scaled by 80 / s (see detect.py);
# the same convention lets the engine pass one ``scale`` to every detector.
DETECTOR_WINDOW_PX = 80.0
# The smallest face, in model-input pixels, found on the shared photos: 9-11 px
# faces of a 128-px image (15 px in the input) and 37 px faces of 500-px ones (14 px).
MIN_INPUT_FACE_PX = 16.0
TILE_OVERLAP = 0.25
TILE_GAIN = 1.5  # tile only when tiles magnify faces at least this much over the whole image
MAX_TILES = 64
MIN_SCORE = 0.5
# Tiles cut large faces into parts BlazeFace half-believes are faces (an ear, a
# collar at 0.6-0.7); a hit only a tile saw must be surer than one the whole image gave.
TILE_MIN_SCORE = 0.75
# The short-range model's false hits on the shared photos score 0.50-0.56; the
# close-ups the full-range model is unsure of score 0.65 and up.
SHORT_MIN_SCORE = 0.6
NMS_IOU = 0.3


@dataclass(frozen=True)
class ModelGeometry:
    key: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


FULL_RANGE = ModelGeometry("blazeface_full", 192, (4,), (1,))
SHORT_RANGE = ModelGeometry("blazeface_short", 128, (8, 16), (2, 6))


def anchors(geom: ModelGeometry) -> np.ndarray:
    """(A, 2) anchor centres as fractions of the input (MediaPipe's SSD anchors, fixed size 1)."""
    out = []
    for stride, per_cell in zip(geom.strides, geom.anchors_per_cell, strict=True):
        n = geom.size // stride
        ys, xs = np.mgrid[0:n, 0:n]
        centres = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class RawHit:
    """One decoded hit in image pixels: box (l, t, r, b), keypoints (6, 2), score 0-1."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


class BlazeFaceModel:
    """One BlazeFace network: letterbox a region to its input, decode its boxes."""

    def __init__(self, geom: ModelGeometry = FULL_RANGE) -> None:
        self.geom = geom
        self._it = interpreter(geom.key)
        self._in = self._it.get_input_details()[0]["index"]
        outs = sorted(self._it.get_output_details(), key=lambda d: int(d["shape"][-1]))
        self._scores, self._boxes = outs[0]["index"], outs[1]["index"]
        self._anchors = anchors(geom)

    def run(self, image: np.ndarray, region: tuple[int, int, int, int], min_score: float) -> list[RawHit]:
        """Hits inside ``region`` (x0, y0, x1, y1) of ``image``, in image pixels."""
        x0, y0, x1, y1 = region
        size = self.geom.size
        side = max(x1 - x0, y1 - y0)
        scale = size / side
        crop = image[y0:y1, x0:x1]
        w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
        canvas = np.zeros((size, size, 3), dtype=np.float32)
        px, py = (size - w) // 2, (size - h) // 2
        resized = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR), np.float32)
        canvas[py:py + h, px:px + w] = resized / 127.5 - 1.0
        self._it.set_tensor(self._in, canvas[None])
        self._it.invoke()
        logits = self._it.get_tensor(self._scores)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = np.nonzero(scores >= min_score)[0]
        if len(keep) == 0:
            return []
        raw = self._it.get_tensor(self._boxes)[0, keep]
        anc = self._anchors[keep]
        centre = raw[:, 0:2] / size + anc
        half = raw[:, 2:4] / size / 2.0
        kps = raw[:, 4:16].reshape(-1, 6, 2) / size + anc[:, None, :]

        def to_image(v: np.ndarray) -> np.ndarray:  # input fractions -> image pixels
            return (v * size - np.array([px, py])) / scale + np.array([x0, y0])

        boxes = np.concatenate([to_image(centre - half), to_image(centre + half)], axis=1)
        return [RawHit(boxes[i], to_image(kps[i]), float(scores[k])) for i, k in enumerate(keep)]


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)  # type: ignore[no-any-return]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with each of (N, 4) boxes."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    return inter / (_area(box) + _area(boxes) - inter + 1e-9)  # type: ignore[no-any-return]


def weighted_nms(hits: list[RawHit], threshold: float = NMS_IOU) -> list[RawHit]:
    """MediaPipe's WEIGHTED suppression: overlapping hits are blended by score, best score kept."""
    hits = sorted(hits, key=lambda h: -h.score)
    out: list[RawHit] = []
    while hits:
        boxes = np.array([h.box for h in hits])
        overlap = iou(hits[0].box, boxes) > threshold
        group = [h for h, o in zip(hits, overlap, strict=True) if o]
        w = np.array([h.score for h in group])[:, None]
        box = (np.array([h.box for h in group]) * w).sum(0) / w.sum()
        kps = (np.array([h.keypoints for h in group]) * w[:, :, None]).sum(0) / w.sum()
        out.append(RawHit(box, kps, hits[0].score))
        hits = [h for h, o in zip(hits, overlap, strict=True) if not o]
    return out


def tiles(width: int, height: int, side: int, overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """Square tiles of ``side`` px covering the image, overlapping by ``overlap`` of a side."""
    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / (side * (1.0 - overlap))) + 1
        return [round(i * (length - side) / (n - 1)) for i in range(n)]

    return [(x, y, min(width, x + side), min(height, y + side)) for y in starts(height) for x in starts(width)]


class BlazeFaceDetector:
    """Full- and short-range BlazeFace over the whole image, plus full-range tiles for small faces."""

    name = "blazeface"

    def __init__(self, *, min_score: float = MIN_SCORE, tile_min_score: float = TILE_MIN_SCORE,
                 close_ups: bool = True) -> None:
        self.model = BlazeFaceModel(FULL_RANGE)
        self.short = BlazeFaceModel(SHORT_RANGE) if close_ups else None
        self.min_score = min_score
        self.tile_min_score = max(min_score, tile_min_score)

    def regions(self, width: int, height: int, scale: float) -> list[tuple[int, int, int, int]]:
        """The whole image, then tiles sized so the smallest wanted face fills MIN_INPUT_FACE_PX."""
        wanted = DETECTOR_WINDOW_PX / max(scale, 1e-6)
        size = self.model.geom.size
        out = [(0, 0, width, height)]
        longer = max(width, height)
        if wanted * size / longer >= MIN_INPUT_FACE_PX:
            return out
        side = max(size, round(wanted * size / MIN_INPUT_FACE_PX))
        if side * TILE_GAIN > longer:  # tiles would see the faces barely larger: not worth it
            return out
        grid = tiles(width, height, side)
        if len(grid) > MAX_TILES:  # a huge image: coarser tiles rather than unbounded time
            side = math.ceil(side * math.sqrt(len(grid) / MAX_TILES))
            grid = tiles(width, height, side)
        return out + grid

    def hits(self, image: np.ndarray, scale: float) -> list[RawHit]:
        h, w = image.shape[:2]
        whole, *grid = self.regions(w, h, scale)
        found = self.model.run(image, whole, self.min_score)
        if self.short is not None:
            found.extend(self.short.run(image, whole, max(self.min_score, SHORT_MIN_SCORE)))
        for region in grid:
            found.extend(self.model.run(image, region, self.tile_min_score))
        return weighted_nms(found)

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        out = []
        for hit in self.hits(image, scale):
            box = tuple(float(v) for v in hit.box)
            out.append(Detection(box, round(100.0 * hit.score, 4), hit.score, self.name,  # type: ignore[arg-type]
                                 keypoints=hit.keypoints.astype(np.float32)))
        return out


# Where dlib's HOG box sits, from BlazeFace's keypoints: its centre is the eye
# midpoint plus (-0.032, 0.317) x s and its side 1.622 x s, where s is the
# root of (eye distance^2 + eye-to-mouth distance^2), which shrinks less than
# either when the head turns or tilts. Medians over 200 lfw_dev faces both
# detectors found; against dlib's points from dlib's own boxes, the 5-point
# predictor's points on these boxes are off by 0.8% of the eye distance on
# average (1.0% from BlazeFace's box moved by the median offset, which fails
# on faces tilted up or turned: Ernie_Stewart_0001, Jason_Kidd_0002).
KEYPOINT_BOX = (-0.0319, 0.3165, 1.622)
# Without keypoints: centre 0.021 widths left and 0.036 heights up, sides 0.971.
DLIB_BOX_SHIFT = (-0.0208, -0.0358)
DLIB_BOX_SCALE = 0.9706


def dlib_style_box(box: tuple[float, float, float, float],
                   keypoints: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """The box dlib's detectors would give for the face BlazeFace boxed as ``box``."""
    if keypoints is not None:
        eyes = (keypoints[0] + keypoints[1]) / 2.0
        s = float(np.hypot(np.linalg.norm(keypoints[1] - keypoints[0]), np.linalg.norm(keypoints[3] - eyes)))
        dx, dy, side = KEYPOINT_BOX
        cx, cy, half = eyes[0] + dx * s, eyes[1] + dy * s, side * s / 2.0
        return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    cx = (left + right) / 2 + DLIB_BOX_SHIFT[0] * w
    cy = (top + bottom) / 2 + DLIB_BOX_SHIFT[1] * h
    hw, hh = DLIB_BOX_SCALE * w / 2, DLIB_BOX_SCALE * h / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)
