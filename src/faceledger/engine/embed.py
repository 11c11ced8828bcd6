"""Aligned chips and descriptors.

Alignment always uses the 5-point shape (as dlib's descriptor was trained):
``dlib.get_face_chip`` with size 150 and padding 0.25. The descriptor of a face
is, by default, the mean of the network's output for the chip and for its
mirror image; that halves the noise of one pass and is part of the model
version (see registry.MODEL_VERSION).
"""

from __future__ import annotations

import dlib
import numpy as np

from .registry import model_path
from .types import CHIP_PADDING, CHIP_SIZE, DESCRIPTOR_DIM


def face_chip(image: np.ndarray, shape: dlib.full_object_detection) -> np.ndarray:
    return np.asarray(dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING), dtype=np.uint8)


class DlibEmbedder:
    """dlib's ResNet descriptor (the reference runtime)."""

    name = "dlib"

    def __init__(self) -> None:
        self._net = dlib.face_recognition_model_v1(model_path("resnet128"))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
        batch = [np.ascontiguousarray(c) for c in chips]
        out = self._net.compute_face_descriptor(batch)
        return np.array([np.array(v) for v in out], dtype=np.float32)


def describe(embedder: object, chips: np.ndarray, *, mirror: bool, dim: int = DESCRIPTOR_DIM,
             normalise: bool = False) -> np.ndarray:
    """Descriptors (N, dim) for chips (N, H, W, 3), mirror-averaged if asked.

    ``normalise``: a cosine pack's descriptors; the mirror average is L2-normalised
    again (the embedder normalises each pass).
    """
    if len(chips) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if not mirror:
        return embedder.embed(chips)  # type: ignore[attr-defined,no-any-return]
    both = np.concatenate([chips, chips[:, :, ::-1, :]], axis=0)
    out = embedder.embed(np.ascontiguousarray(both))  # type: ignore[attr-defined]
    n = len(chips)
    mean = (out[:n] + out[n:]) / 2.0
    if normalise:
        mean = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return mean.astype(np.float32)
