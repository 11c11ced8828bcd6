"""Face detection: dlib's HOG detector (fast default) and MMOD CNN (accurate).

The detection scale is chosen from the image size and the smallest face the
caller wants found, so small images are upsampled just enough and large ones
are scanned at (or below) their own resolution instead of being upsampled
whole. Each detector also has a pixel budget: it never scans a working image
of more pixels than that, whatever scale it is asked for, so the cost (time
and memory) of one detection is bounded for every image up to the pixel cap.
Boxes come back in the coordinates of the image that was passed in.
"""

from __future__ import annotations

import math

import dlib
import numpy as np
from PIL import Image

from .registry import model_path
from .types import Detection

# Both dlib detectors scan with a window of about 80x80 pixels: a face of
# ``s`` pixels is found once the image is scaled by at least 80 / s.
DETECTOR_WINDOW_PX = 80.0
# Rekognition's documented minimum: a 40x40 face in a 1920x1080 image.
REKOGNITION_MIN_FACE_FRACTION = 40.0 / 1920.0
# The most pixels HOG scans: what the scale rule gives a square image at the
# defaults (a 3840-px longer side), ~3-7 s and ~0.3 GB on one core.
HOG_PIXEL_BUDGET = 3840 * 3840
# The most pixels the MMOD CNN scans. It costs ~10-25 us and ~1 KB of memory
# per scanned pixel (a 3000x3000 blank scanned at 1x: 90 s of CPU; a
# 6300x6300 one at 0.61x: 396 s and 14.7 GB). As the primary detector (opt-in,
# accuracy first) it gets a 1920x1080 frame at 1x; as HOG's fallback 0.5 Mpx:
# every LFW (250 px) and PASCAL (500x375) image still at its own scale, a
# larger image searched for faces of at least 80 / scale px, the close and
# turned faces HOG is most likely to miss.
CNN_PIXEL_BUDGET = 1920 * 1080
FALLBACK_PIXEL_BUDGET = 500_000
# dlib's MMOD network fails (RuntimeError in tensor.h) on inputs under about
# 10 px, and it finds no face in anything much smaller than 80 px (LFW face
# crops filling the image: 10 of 10 found at 120 px, 5 at 80, none at 64).
CNN_MIN_SIDE_PX = 32
# A face is a pattern of contrasts. An image in which no channel varies by
# more than this many levels (of 255) has no edge a detector could respond to:
# anything found on it would be a false positive, so it is not scanned at all.
FLAT_TOLERANCE = 2


def detection_scale(
    width: int,
    height: int,
    *,
    min_face_px: float = 40.0,
    min_face_fraction: float = REKOGNITION_MIN_FACE_FRACTION,
    max_scale: float = 2.0,
    pixel_budget: float = HOG_PIXEL_BUDGET,
) -> float:
    """The factor to resize an image by so the smallest wanted face fills the window.

    The smallest wanted face is the larger of an absolute floor and a fraction
    of the image's longer side, so a 4000-px photo is not upsampled to find
    faces far smaller than Rekognition would report. The scaled image never
    has more than ``pixel_budget`` pixels.
    """
    min_face = max(min_face_px, min_face_fraction * max(width, height))
    return float(min(max_scale, DETECTOR_WINDOW_PX / min_face, budget_scale(width, height, pixel_budget)))


def budget_scale(width: int, height: int, pixel_budget: float) -> float:
    """The largest scale at which a ``width`` x ``height`` image has at most ``pixel_budget`` pixels."""
    return math.sqrt(pixel_budget / max(1, width * height))


def is_flat(image: np.ndarray, tolerance: int = FLAT_TOLERANCE) -> bool:
    """Whether no channel of the (H, W, C) image varies by more than ``tolerance`` levels.

    A strided sample rules out almost every real image at once; only an image
    flat on the sample is checked in full (a min and a max pass, no copy of the image).
    """
    sample = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)]
    return _spread(sample) <= tolerance and _spread(image) <= tolerance


def _spread(image: np.ndarray) -> int:
    """The largest max - min of any channel, reducing whole rows at a time (fast for uint8)."""
    rows = np.ascontiguousarray(image).reshape(image.shape[0], -1)
    hi = rows.max(axis=0).reshape(-1, image.shape[-1]).max(axis=0).astype(np.int16)
    lo = rows.min(axis=0).reshape(-1, image.shape[-1]).min(axis=0).astype(np.int16)
    return int((hi - lo).max())


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def score_to_confidence(score: float, *, midpoint: float = -0.3, slope: float = 3.0) -> float:
    """Map a detector's SVM-style score (threshold 0) to a 0-100 confidence.

    A logistic curve: the detector's own threshold (score 0) maps to about 71,
    a typical clear face (score >= 1) to over 97. Not a probability; documented.
    """
    return float(100.0 / (1.0 + math.exp(-slope * (score - midpoint))))


def _unscale(rect: dlib.rectangle, scale: float) -> tuple[float, float, float, float]:
    return (
        rect.left() / scale,
        rect.top() / scale,
        (rect.right() + 1) / scale,
        (rect.bottom() + 1) / scale,
    )


class HogDetector:
    """dlib's frontal HOG + linear SVM detector. About 10-30 ms per small image."""

    name = "hog"

    def __init__(self, pixel_budget: float = HOG_PIXEL_BUDGET) -> None:
        self._det = dlib.get_frontal_face_detector()
        self.pixel_budget = pixel_budget

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        scale = min(scale, budget_scale(image.shape[1], image.shape[0], self.pixel_budget))
        scaled = resize(image, scale)
        rects, scores, _ = self._det.run(scaled, 0, 0.0)
        return [
            Detection(_unscale(r, scale), score_to_confidence(s), float(s), self.name)
            for r, s in zip(rects, scores, strict=True)
        ]


class MmodDetector:
    """dlib's MMOD CNN detector: finds more off-angle faces, much slower on CPU."""

    name = "cnn"

    def __init__(self, pixel_budget: float = CNN_PIXEL_BUDGET) -> None:
        self._det = dlib.cnn_face_detection_model_v1(model_path("mmod"))
        self.pixel_budget = pixel_budget

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        scale = min(scale, budget_scale(image.shape[1], image.shape[0], self.pixel_budget))
        if min(image.shape[0], image.shape[1]) * scale < CNN_MIN_SIDE_PX:
            return []
        scaled = resize(image, scale)
        hits = self._det(scaled, 0)
        return [
            Detection(
                _unscale(h.rect, scale),
                score_to_confidence(h.confidence, midpoint=-0.2, slope=4.0),
                float(h.confidence),
                self.name,
            )
            for h in hits
        ]


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    left, top, right, bottom = box
    return (max(0.0, left), max(0.0, top), min(float(width), right), min(float(height), bottom))
