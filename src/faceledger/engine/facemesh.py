"""FaceMesh (468 points) and the iris model (5 points per eye) behind the Landmarker protocol.

As MediaPipe does for a still image: the face crop is a square 1.5x the
detection box's longer side, rotated so the line between BlazeFace's two eye
keypoints is level (with a dlib box, which has no keypoints, it is upright).
FaceMesh gives 468 (x, y, z) points in that crop; each eye's crop (2.3x the
corner-to-corner width, the image-right eye mirrored, as the iris model was
trained on one eye) gives the iris centre and four iris-edge points. Points
468-472 are the image-left iris (centre first) and 473-477 the image-right
one, so the 478 points have MediaPipe's "refined landmarks" numbering.

``points`` returns (478, 2) float32 pixels, per the engine convention;
``points3d`` keeps the mesh's relative depth (pixels, smaller is nearer),
which pose estimation uses. No point is invented: every one is a model output.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .mediapipe_models import interpreter

MESH_INPUT = 192
IRIS_INPUT = 64
FACE_CROP_SCALE = 1.5
EYE_CROP_SCALE = 2.3
NUM_POINTS = 478
# Eye corners as MediaPipe numbers them: image-left eye (outer, inner), image-right eye (inner, outer).
LEFT_EYE_CORNERS = (33, 133)
RIGHT_EYE_CORNERS = (362, 263)


def crop_transform(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """2x3 matrix from crop pixels (u, v, 1) to image pixels: a ``side``-px square rotated by ``angle``."""
    s = side / size
    c, n = math.cos(angle), math.sin(angle)
    half = size / 2.0
    return np.array([
        [s * c, -s * n, centre[0] - half * s * c + half * s * n],
        [s * n, s * c, centre[1] - half * s * n - half * s * c],
    ])


def crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop that ``m`` describes (zeros outside the image)."""
    data = tuple(float(v) for v in m.reshape(-1))
    out = Image.fromarray(image).transform((size, size), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return np.asarray(out)


def to_image(m: np.ndarray, uv: np.ndarray) -> np.ndarray:
    return uv @ m[:, :2].T + m[:, 2]  # type: ignore[no-any-return]


class FaceMeshLandmarker:
    """478 MediaPipe points for a detection box (and BlazeFace keypoints when it has them)."""

    name = "facemesh"
    num_points = NUM_POINTS

    def __init__(self) -> None:
        self._mesh = interpreter("facemesh")
        self._iris = interpreter("iris")
        self._mesh_in = self._mesh.get_input_details()[0]["index"]
        outs = {int(np.prod(d["shape"])): d["index"] for d in self._mesh.get_output_details()}
        self._mesh_pts, self._mesh_score = outs[1404], outs[1]
        self._iris_in = self._iris.get_input_details()[0]["index"]
        outs = {int(np.prod(d["shape"])): d["index"] for d in self._iris.get_output_details()}
        self._iris_pts = outs[15]
        self.last_presence = 1.0

    def points(self, image: np.ndarray, box: tuple[float, float, float, float],
               keypoints: np.ndarray | None = None) -> np.ndarray:
        return self.points3d(image, box, keypoints)[:, :2].copy()

    def points3d(self, image: np.ndarray, box: tuple[float, float, float, float],
                 keypoints: np.ndarray | None = None) -> np.ndarray:
        """(478, 3) float32: x, y in image pixels, z relative depth in pixels."""
        left, top, right, bottom = box
        centre = np.array([(left + right) / 2.0, (top + bottom) / 2.0])
        angle = 0.0
        if keypoints is not None and len(keypoints) >= 2:
            d = keypoints[1] - keypoints[0]
            angle = math.atan2(float(d[1]), float(d[0]))
        side = FACE_CROP_SCALE * max(right - left, bottom - top)
        m = crop_transform(centre, side, angle, MESH_INPUT)
        x = crop(image, m, MESH_INPUT).astype(np.float32) / 255.0
        self._mesh.set_tensor(self._mesh_in, x[None])
        self._mesh.invoke()
        raw = self._mesh.get_tensor(self._mesh_pts).reshape(468, 3).astype(np.float64)
        logit = float(self._mesh.get_tensor(self._mesh_score).reshape(-1)[0])
        self.last_presence = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
        mesh = np.empty((468, 3))
        mesh[:, :2] = to_image(m, raw[:, :2])
        mesh[:, 2] = raw[:, 2] * side / MESH_INPUT
        iris = [self._iris_points(image, mesh, LEFT_EYE_CORNERS, flip=False),
                self._iris_points(image, mesh, RIGHT_EYE_CORNERS, flip=True)]
        return np.concatenate([mesh, *iris]).astype(np.float32)

    def _iris_points(self, image: np.ndarray, mesh: np.ndarray, corners: tuple[int, int], flip: bool) -> np.ndarray:
        a, b = mesh[corners[0], :2], mesh[corners[1], :2]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        centre = (lo + hi) / 2.0
        d = b - a
        angle = math.atan2(float(d[1]), float(d[0]))
        side = EYE_CROP_SCALE * float(max(hi - lo))
        m = crop_transform(centre, max(side, 4.0), angle, IRIS_INPUT)
        eye = crop(image, m, IRIS_INPUT)
        if flip:
            eye = eye[:, ::-1]
        x = np.ascontiguousarray(eye, dtype=np.float32) / 255.0
        self._iris.set_tensor(self._iris_in, x[None])
        self._iris.invoke()
        raw = self._iris.get_tensor(self._iris_pts).reshape(5, 3).astype(np.float64)
        if flip:
            raw[:, 0] = IRIS_INPUT - raw[:, 0]
        out = np.empty((5, 3))
        out[:, :2] = to_image(m, raw[:, :2])
        out[:, 2] = raw[:, 2] * side / IRIS_INPUT
        return out
