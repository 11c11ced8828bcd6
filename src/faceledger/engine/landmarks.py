"""Landmarks: dlib's shape predictors and their Rekognition landmark types.

The 5-point predictor (public domain) is the default and the one alignment
uses. It gives two corners of each eye and the bottom of the nose, so only the
Rekognition types those points honestly give are reported: eyeLeft, eyeRight,
leftEyeLeft, leftEyeRight, rightEyeLeft, rightEyeRight and nose. The 68-point
predictor adds mouth, brows, pupils and jawline, but its training data
(iBUG 300-W) excludes commercial use, so it is an explicit opt-in.

"Left" and "right" are as seen in the image (eyeLeft has the smaller x), as
Rekognition reports them.
"""

from __future__ import annotations

import dlib
import numpy as np

from .registry import model_path

FIVE_POINT_TYPES = (
    "eyeLeft", "eyeRight", "leftEyeLeft", "leftEyeRight", "rightEyeLeft", "rightEyeRight", "nose",
)


class ShapeLandmarker:
    """A dlib shape predictor behind the Landmarker protocol."""

    def __init__(self, num_points: int = 5) -> None:
        if num_points not in (5, 68):
            raise ValueError("num_points must be 5 or 68")
        self.num_points = num_points
        self.name = f"landmarks{num_points}"
        self._sp = dlib.shape_predictor(model_path(self.name))

    def shape(self, image: np.ndarray, box: tuple[float, float, float, float]) -> dlib.full_object_detection:
        left, top, right, bottom = (round(v) for v in box)
        return self._sp(image, dlib.rectangle(left, top, right - 1, bottom - 1))

    def points(self, image: np.ndarray, box: tuple[float, float, float, float],
               keypoints: np.ndarray | None = None) -> np.ndarray:
        return shape_to_points(self.shape(image, box))


def shape_to_points(shape: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def points_to_shape(points: np.ndarray, box: tuple[float, float, float, float]) -> dlib.full_object_detection:
    left, top, right, bottom = (round(v) for v in box)
    rect = dlib.rectangle(left, top, right - 1, bottom - 1)
    return dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in points])


def eye_nose(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image-left eye centre, image-right eye centre and nose point, for 5 or 68 points."""
    if len(points) == 68:
        a, b, nose = points[36:42].mean(0), points[42:48].mean(0), points[33]
    else:
        a, b, nose = points[0:2].mean(0), points[2:4].mean(0), points[4]
    return (a, b, nose) if a[0] <= b[0] else (b, a, nose)


def _mid(points: np.ndarray, *idx: int) -> np.ndarray:
    return points[list(idx)].mean(0)


def rekognition_landmarks(points: np.ndarray) -> dict[str, tuple[float, float]]:
    """Rekognition landmark type -> pixel (x, y)."""
    if len(points) == 5:
        eyes = sorted((points[0:2], points[2:4]), key=lambda e: float(e[:, 0].mean()))
        le = eyes[0][np.argsort(eyes[0][:, 0])]
        re = eyes[1][np.argsort(eyes[1][:, 0])]
        named = {
            "eyeLeft": le.mean(0), "eyeRight": re.mean(0),
            "leftEyeLeft": le[0], "leftEyeRight": le[1],
            "rightEyeLeft": re[0], "rightEyeRight": re[1],
            "nose": points[4],
        }
    else:
        p = points
        named = {
            "eyeLeft": p[36:42].mean(0), "eyeRight": p[42:48].mean(0),
            "leftPupil": p[36:42].mean(0), "rightPupil": p[42:48].mean(0),
            "leftEyeLeft": p[36], "leftEyeRight": p[39],
            "leftEyeUp": _mid(p, 37, 38), "leftEyeDown": _mid(p, 40, 41),
            "rightEyeLeft": p[42], "rightEyeRight": p[45],
            "rightEyeUp": _mid(p, 43, 44), "rightEyeDown": _mid(p, 46, 47),
            "leftEyeBrowLeft": p[17], "leftEyeBrowUp": p[19], "leftEyeBrowRight": p[21],
            "rightEyeBrowLeft": p[22], "rightEyeBrowUp": p[24], "rightEyeBrowRight": p[26],
            "nose": p[30], "noseLeft": p[31], "noseRight": p[35],
            "mouthLeft": p[48], "mouthRight": p[54], "mouthUp": p[51], "mouthDown": p[57],
            "upperJawlineLeft": p[1], "midJawlineLeft": p[4], "chinBottom": p[8],
            "midJawlineRight": p[12], "upperJawlineRight": p[15],
        }
    return {k: (float(v[0]), float(v[1])) for k, v in named.items()}


def eye_mouth_state(points: np.ndarray) -> tuple[tuple[bool, float], tuple[bool, float]] | None:
    """Eyes open and mouth open from 68-point geometry, each (value, confidence 0-100).

    Eye aspect ratio (Soukupová & Čech 2016) above 0.2 is open; inner-lip gap
    over mouth width above 0.12 is open. Confidence grows with the distance
    from the cut. None with 5 points: they say nothing about lids or lips.
    """
    if len(points) != 68:
        return None
    p = points.astype(np.float64)

    def ear(e: np.ndarray) -> float:
        return float(
            (np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4]))
            / (2.0 * np.linalg.norm(e[0] - e[3]) + 1e-9)
        )

    eye = (ear(p[36:42]) + ear(p[42:48])) / 2.0
    gap = float(np.linalg.norm(_mid(p, 61, 62, 63) - _mid(p, 65, 66, 67)))
    mar = gap / (float(np.linalg.norm(p[60] - p[64])) + 1e-9)

    def decide(value: float, cut: float, span: float) -> tuple[bool, float]:
        conf = 50.0 + 50.0 * min(1.0, abs(value - cut) / span)
        return bool(value > cut), round(conf, 3)

    return decide(eye, 0.2, 0.1), decide(mar, 0.12, 0.15)
