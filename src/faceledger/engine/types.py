"""Data shapes and model seams of the engine, stated once.

Conventions (every stage follows them):
- Images are ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, RGB, row-major.
- Boxes are pixel rectangles ``(left, top, right, bottom)`` as floats in the
  coordinates of the decoded, EXIF-oriented image; right/bottom exclusive.
- Landmark points are ``numpy.ndarray`` of shape (K, 2), float32, (x, y) pixels.
- Aligned chips are (150, 150, 3) uint8 RGB, made as ``dlib.get_face_chip``
  makes them (padding 0.25); a batch is (N, 150, 150, 3).
- Descriptors are ``numpy.ndarray`` of shape (N, 128), float32. They are not
  normalised: dlib's metric is Euclidean distance on the raw descriptor.
- No faces is an empty list or an array with N = 0, never ``None``.

Scoring (a distance) is separate from deciding (a threshold): nothing in the
engine says "match"; it says distance, similarity and estimated FMR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25
DESCRIPTOR_DIM = 128


@dataclass(frozen=True)
class Detection:
    """One detector hit: a pixel box and a detector confidence 0-100."""

    box: tuple[float, float, float, float]
    confidence: float
    raw_score: float
    detector: str
    # (6, 2) float32 keypoints when the detector gives them (BlazeFace: eyes,
    # nose tip, mouth centre, ear tragions); None for dlib's detectors.
    keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class Quality:
    brightness: float  # 0-100
    sharpness: float  # 0-100


@dataclass
class Face:
    """Everything the engine says about one face in one image."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: dict[str, tuple[float, float]]  # Rekognition type -> pixel (x, y)
    points: np.ndarray  # (K, 2) raw predictor points, K = 5, 68 or 478 (FaceMesh)
    pose: Pose
    quality: Quality
    image_size: tuple[int, int]  # (width, height)
    eyes_open: tuple[bool, float] | None = None  # (value, confidence) with 68 points
    mouth_open: tuple[bool, float] | None = None
    eye_direction: tuple[float, float, float] | None = None  # (yaw, pitch, confidence) with FaceMesh
    unindexable_reasons: list[str] = field(default_factory=list)
    descriptor: np.ndarray | None = None  # (128,) float32 when embedded
    detector: str = "hog"
    align_points: np.ndarray | None = None  # (5, 2) in dlib's 5-point order: what the chip is aligned on

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def ratio_box(self) -> dict[str, float]:
        """Rekognition's BoundingBox: ratios of the image width and height."""
        w, h = self.image_size
        left, top, right, bottom = self.box
        return {
            "Width": (right - left) / w,
            "Height": (bottom - top) / h,
            "Left": left / w,
            "Top": top / h,
        }


class Detector(Protocol):
    """Finds faces. ``scale`` is applied to the image before scanning."""

    name: str

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]: ...


class Landmarker(Protocol):
    """Places K landmark points inside a detection box."""

    name: str
    num_points: int

    def points(self, image: np.ndarray, box: tuple[float, float, float, float],
               keypoints: np.ndarray | None = None) -> np.ndarray: ...


class Embedder(Protocol):
    """Turns aligned chips (N, 150, 150, 3) uint8 into descriptors (N, 128) float32."""

    name: str

    def embed(self, chips: np.ndarray) -> np.ndarray: ...
