"""What FaceMesh's 478 points honestly give: Rekognition landmarks, eyes/mouth state, gaze, pose.

Every value is read off model points (468 mesh + 10 iris, MediaPipe's
numbering); nothing is invented. "Left" and "right" are as seen in the image,
as in landmarks.py: on a frontal photo the image-left eye is MediaPipe's
33/133 eye. Sign conventions are those of quality.py (yaw positive toward the
image's right, pitch positive tilting up, roll positive clockwise).

Cut-offs and offsets were measured on 149 lfw_dev faces (random sample, seed 1)
and are development figures: eye aspect ratio there has median 0.264 and 1st
percentile 0.166; the iris centre sits 0.04 eye-widths above the corner line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .types import Pose

# Rekognition landmark type -> MediaPipe point index (or indices averaged).
MESH_TYPES: dict[str, tuple[int, ...]] = {
    "eyeLeft": (33, 133), "eyeRight": (362, 263),
    "leftPupil": (468,), "rightPupil": (473,),
    "leftEyeLeft": (33,), "leftEyeRight": (133,), "leftEyeUp": (159,), "leftEyeDown": (145,),
    "rightEyeLeft": (362,), "rightEyeRight": (263,), "rightEyeUp": (386,), "rightEyeDown": (374,),
    "leftEyeBrowLeft": (70,), "leftEyeBrowUp": (105,), "leftEyeBrowRight": (107,),
    "rightEyeBrowLeft": (336,), "rightEyeBrowUp": (334,), "rightEyeBrowRight": (300,),
    "nose": (1,), "noseLeft": (98,), "noseRight": (327,),
    "mouthLeft": (61,), "mouthRight": (291,), "mouthUp": (0,), "mouthDown": (17,),
    "upperJawlineLeft": (234,), "midJawlineLeft": (172,), "chinBottom": (152,),
    "midJawlineRight": (397,), "upperJawlineRight": (454,),
}
# Rekognition's DEFAULT landmark set (DetectFaces without Attributes=["ALL"]).
DEFAULT_TYPES = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose")

# The mesh point nearest, on average over the lfw_dev sample, to each of dlib's
# 5-point predictor's points (image-right eye outer, inner; image-left eye
# outer, inner; bottom of the nose): mean error 0.05 eye distances, about
# dlib's own jitter. dlib's chip alignment reads these.
DLIB5_PROXY = (249, 382, 7, 155, 2)
# ArcFace's five points: eye centres (image-left first), nose tip, mouth corners.
ARCFACE5 = ((33, 133), (362, 263), (1,), (61,), (291,))

EAR_LEFT = (33, 160, 158, 133, 153, 144)
EAR_RIGHT = (362, 385, 387, 263, 373, 380)
EYES_OPEN_CUT, EYES_SPAN = 0.17, 0.08
MOUTH_OPEN_CUT, MOUTH_SPAN = 0.12, 0.15  # inner-lip gap over inner mouth width, as with 68 points
EYEBALL_RADIUS = 0.42  # eyeball radius over eye width (about 12 mm over 29 mm)
IRIS_RISE = 0.04  # the iris centre's rest height above the corner line, in eye widths
PITCH_OFFSET = 5.6  # degrees: makes the lfw_dev median pitch agree with the 5-point estimate (-1.0)


def mesh_landmarks(points: np.ndarray) -> dict[str, tuple[float, float]]:
    """Rekognition landmark type -> pixel (x, y) for 478 points."""
    out = {}
    for name, idx in MESH_TYPES.items():
        v = points[list(idx), :2].mean(0)
        out[name] = (float(v[0]), float(v[1]))
    return out


def dlib5_points(points: np.ndarray) -> np.ndarray:
    """(5, 2) float32 points in dlib's 5-point order, for dlib's chip alignment."""
    return points[list(DLIB5_PROXY), :2].astype(np.float32)


def arcface5_points(points: np.ndarray) -> np.ndarray:
    """(5, 2) float32 points in ArcFace's order, for the 112x112 template."""
    return np.array([points[list(i), :2].mean(0) for i in ARCFACE5], dtype=np.float32)


def _decide(value: float, cut: float, span: float) -> tuple[bool, float]:
    conf = 50.0 + 50.0 * min(1.0, abs(value - cut) / span)
    return bool(value > cut), round(conf, 3)


def eye_aspect(points: np.ndarray) -> float:
    def ear(idx: tuple[int, ...]) -> float:
        e = points[list(idx), :2].astype(np.float64)
        return float((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4]))
                     / (2.0 * np.linalg.norm(e[0] - e[3]) + 1e-9))

    return (ear(EAR_LEFT) + ear(EAR_RIGHT)) / 2.0


def mesh_states(points: np.ndarray) -> tuple[tuple[bool, float], tuple[bool, float]]:
    """(EyesOpen, MouthOpen), each (value, confidence 0-100), from lid and lip geometry."""
    p = points[:, :2].astype(np.float64)
    gap = float(np.linalg.norm(p[13] - p[14]))
    mar = gap / (float(np.linalg.norm(p[78] - p[308])) + 1e-9)
    return _decide(eye_aspect(points), EYES_OPEN_CUT, EYES_SPAN), _decide(mar, MOUTH_OPEN_CUT, MOUTH_SPAN)


def eye_direction(points: np.ndarray) -> tuple[float, float, float]:
    """Gaze (yaw, pitch, confidence) relative to the head, from iris centres within the eye corners.

    Each iris centre's offset from its corners' midpoint, in the eye's own
    frame, over the eyeball radius, is the sine of the eye's rotation; the two
    eyes are averaged. Confidence falls with closing eyes (the iris is then
    partly hidden and its centre a guess of the model).
    """
    p = points[:, :2].astype(np.float64)
    yaws, pitches = [], []
    for iris, (a, b) in ((468, (33, 133)), (473, (362, 263))):
        d = p[b] - p[a]
        width = float(np.hypot(*d)) + 1e-9
        ux, uy = d / width, np.array([-d[1], d[0]]) / width
        off = p[iris] - (p[a] + p[b]) / 2.0
        sx = float(off @ ux) / (EYEBALL_RADIUS * width)
        sy = (-float(off @ uy) / width - IRIS_RISE) / EYEBALL_RADIUS
        yaws.append(math.degrees(math.asin(max(-1.0, min(1.0, sx)))))
        pitches.append(math.degrees(math.asin(max(-1.0, min(1.0, sy)))))
    ear = eye_aspect(points)
    conf = 100.0 * max(0.0, min(1.0, (ear - 0.1) / 0.15))
    return round(float(np.mean(yaws)), 3), round(float(np.mean(pitches)), 3), round(conf, 3)


def pose_from_mesh(points3d: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the mesh's own 3-D points (x, y pixels, z depth).

    The face's axes are the outer-eye-corner line (33 -> 263) and the
    forehead-to-chin line (10 -> 152), made orthogonal; their cross product
    points away from the camera on a frontal face.
    """
    p = points3d.astype(np.float64)
    ex = p[263] - p[33]
    ex /= np.linalg.norm(ex) + 1e-9
    ey = p[152] - p[10]
    ey -= (ey @ ex) * ex
    ey /= np.linalg.norm(ey) + 1e-9
    ez = np.cross(ex, ey)
    yaw = math.degrees(math.atan2(-ez[0], ez[2]))
    pitch = math.degrees(math.atan2(ez[1], ez[2])) + PITCH_OFFSET
    roll = math.degrees(math.atan2(ex[1], ex[0]))
    return round(yaw, 3), round(pitch, 3), round(roll, 3)


@dataclass(frozen=True)
class MeshReading:
    """Everything the engine takes from one face's 478 points."""

    points: np.ndarray  # (478, 2) float32 pixels
    landmarks: dict[str, tuple[float, float]]
    pose: Pose
    eyes_open: tuple[bool, float]
    mouth_open: tuple[bool, float]
    eye_direction: tuple[float, float, float]
    align_points: np.ndarray  # (5, 2) in dlib's 5-point order


def read_mesh(points3d: np.ndarray) -> MeshReading:
    yaw, pitch, roll = pose_from_mesh(points3d)
    eyes, mouth = mesh_states(points3d)
    return MeshReading(
        points=points3d[:, :2].astype(np.float32), landmarks=mesh_landmarks(points3d),
        pose=Pose(yaw=yaw, pitch=pitch, roll=roll), eyes_open=eyes, mouth_open=mouth,
        eye_direction=eye_direction(points3d), align_points=dlib5_points(points3d),
    )
