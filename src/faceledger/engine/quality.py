"""Pose, image quality and the IndexFaces reasons a face would be refused.

Pose comes from landmark geometry, not a network: roll is the angle of the
eye line; yaw is the nose's sideways offset from the eye midpoint relative to
the eye distance; pitch is its vertical offset against the frontal average.
They are estimates (a few degrees near frontal, coarser beyond 30 degrees)
and are documented as such. Sign convention: yaw is positive when the face
turns toward the image's right, pitch positive when it tilts up, roll positive
when the eye line rotates clockwise in the image.

Quality is measured on the face region: brightness is mean luma (0-100);
sharpness is the variance of the Laplacian of a 96x96 grey face crop, mapped
to 0-100. Thresholds are the module constants below.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .landmarks import eye_nose
from .types import Pose, Quality

# Nose-to-eye-line depth and drop relative to the eye distance on frontal faces,
# measured on lfw_dev with the 5-point predictor (nose = bottom of the nose).
NOSE_DEPTH_RATIO = 0.65
FRONTAL_NOSE_DROP = 0.755

MAX_YAW = 45.0
MAX_PITCH = 40.0
MIN_BRIGHTNESS = 15.0
MAX_BRIGHTNESS = 97.0
MIN_SHARPNESS = 8.0
MIN_CONFIDENCE = 75.0
MIN_QUALITY = 20.0
SHARPNESS_SCALE = 150.0  # Laplacian variance at which sharpness reaches ~63


def estimate_pose(points: np.ndarray) -> Pose:
    left_eye, right_eye, nose = (v.astype(np.float64) for v in eye_nose(points))
    d = right_eye - left_eye
    dist = float(np.hypot(*d)) + 1e-9
    roll = math.degrees(math.atan2(d[1], d[0]))
    mid = (left_eye + right_eye) / 2.0
    c, s = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    off = nose - mid
    x = (c * off[0] - s * off[1]) / dist
    y = (s * off[0] + c * off[1]) / dist
    yaw = math.degrees(math.atan2(x, NOSE_DEPTH_RATIO))
    ratio = max(-1.0, min(1.0, (FRONTAL_NOSE_DROP - y) / max(FRONTAL_NOSE_DROP, 1e-6)))
    pitch = math.degrees(math.asin(ratio)) * 0.75
    return Pose(yaw=round(yaw, 3), pitch=round(pitch, 3), roll=round(roll, 3))


def face_crop_grey(image: np.ndarray, box: tuple[float, float, float, float], size: int = 96) -> np.ndarray:
    h, w = image.shape[:2]
    left, top, right, bottom = box
    x0, y0 = max(0, int(left)), max(0, int(top))
    x1, y1 = min(w, int(math.ceil(right))), min(h, int(math.ceil(bottom)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((size, size), dtype=np.float32)
    crop = Image.fromarray(image[y0:y1, x0:x1]).convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float32)


def measure_quality(image: np.ndarray, box: tuple[float, float, float, float]) -> Quality:
    grey = face_crop_grey(image, box)
    brightness = float(grey.mean()) / 255.0 * 100.0
    lap = (
        -4.0 * grey[1:-1, 1:-1]
        + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    )
    var = float(lap.var())
    sharpness = 100.0 * (1.0 - math.exp(-var / SHARPNESS_SCALE))
    return Quality(brightness=round(brightness, 3), sharpness=round(sharpness, 3))


def quality_score(quality: Quality) -> float:
    """One 0-100 figure for a probe: low when dark, blown out or blurred."""
    b = quality.brightness
    exposure = 100.0 * max(0.0, 1.0 - abs(b - 50.0) / 50.0) ** 0.5
    return round(math.sqrt(max(exposure, 0.0) * max(quality.sharpness, 0.0)), 3)


def unindexable_reasons(
    *, pose: Pose, quality: Quality, confidence: float, box_size: float, min_face_px: float
) -> list[str]:
    """The Rekognition ``Reasons`` that would keep this face out of a collection."""
    reasons = []
    if abs(pose.yaw) > MAX_YAW or abs(pose.pitch) > MAX_PITCH:
        reasons.append("EXTREME_POSE")
    if quality.brightness < MIN_BRIGHTNESS or quality.brightness > MAX_BRIGHTNESS:
        reasons.append("LOW_BRIGHTNESS")
    if quality.sharpness < MIN_SHARPNESS:
        reasons.append("LOW_SHARPNESS")
    if confidence < MIN_CONFIDENCE:
        reasons.append("LOW_CONFIDENCE")
    if box_size < min_face_px:
        reasons.append("SMALL_BOUNDING_BOX")
    if quality_score(quality) < MIN_QUALITY:
        reasons.append("LOW_FACE_QUALITY")
    return reasons
