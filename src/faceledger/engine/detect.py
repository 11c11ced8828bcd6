"""Face detection: dlib's HOG detector (fast default) and MMOD CNN (accurate).

The detection scale is chosen from the image size and the smallest face the
caller wants found, so small images are upsampled just enough and large ones
are scanned at (or below) their own resolution instead of being upsampled
whole. Boxes come back in the coordinates of the image that was passed in.
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


def detection_scale(
    width: int,
    height: int,
    *,
    min_face_px: float = 40.0,
    min_face_fraction: float = REKOGNITION_MIN_FACE_FRACTION,
    max_scale: float = 2.0,
) -> float:
    """The factor to resize an image by so the smallest wanted face fills the window.

    The smallest wanted face is the larger of an absolute floor and a fraction
    of the image's longer side, so a 4000-px photo is not upsampled to find
    faces far smaller than Rekognition would report.
    """
    min_face = max(min_face_px, min_face_fraction * max(width, height))
    return float(min(max_scale, DETECTOR_WINDOW_PX / min_face))


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

    def __init__(self) -> None:
        self._det = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        scaled = resize(image, scale)
        rects, scores, _ = self._det.run(scaled, 0, 0.0)
        return [
            Detection(_unscale(r, scale), score_to_confidence(s), float(s), self.name)
            for r, s in zip(rects, scores, strict=True)
        ]


class MmodDetector:
    """dlib's MMOD CNN detector: finds more off-angle faces, much slower on CPU."""

    name = "cnn"

    def __init__(self) -> None:
        self._det = dlib.cnn_face_detection_model_v1(model_path("mmod"))

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
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
