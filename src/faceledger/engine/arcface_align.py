"""The ArcFace 112x112 chip: five points mapped onto insightface's template by a similarity.

For descriptor networks trained on insightface-aligned faces (ArcFace,
MobileFaceNet and most model packs). The five points are the image-left eye
centre, image-right eye centre, nose tip and the image-left and image-right
mouth corners (mesh_geometry.arcface5_points gives them from FaceMesh).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ARCFACE_SIZE = 112
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041],
], dtype=np.float64)
# dlib's 5 points (image-right eye outer and inner corner, image-left eye outer and
# inner corner, nose base) in the same 112x112 frame: the median, over 100 lfw_dev
# faces, of dlib's points carried by the similarity that puts FaceMesh's five
# ArcFace points on ARCFACE_TEMPLATE (spread 1.3-2.3 px per coordinate). Chips
# aligned on it match the ArcFace template's framing without FaceMesh.
DLIB5_ARCFACE_TEMPLATE = np.array([
    [80.19, 51.71], [66.32, 52.23], [30.83, 52.21], [44.68, 52.28], [55.84, 78.91],
], dtype=np.float64)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (Umeyama) taking ``src`` points onto ``dst``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix)) / (float((s0**2).sum()) / len(src) + 1e-12)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - m[:, :2] @ ms
    return m


def arcface_chip(image: np.ndarray, points5: np.ndarray, size: int = ARCFACE_SIZE,
                 template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """(size, size, 3) uint8 chip with the five points on ``template`` (in the 112 frame, scaled to ``size``).

    ``template`` is ARCFACE_TEMPLATE for points in ArcFace's order, DLIB5_ARCFACE_TEMPLATE for dlib's 5 points.
    """
    m = similarity(points5, template * (size / ARCFACE_SIZE))
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]  # PIL maps output -> input pixels
    data = tuple(float(v) for v in inv.reshape(-1))
    return np.asarray(Image.fromarray(image).transform((size, size), Image.Transform.AFFINE, data,
                                                       Image.Resampling.BILINEAR))
