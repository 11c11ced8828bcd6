"""Fakes for the engine's seams, shipped for fast unit tests (not for end-to-end ones).

``FakeDetector`` reports one face in the middle of any image that is not a
single flat colour; ``FakeEmbedder`` maps a chip to a seeded unit vector
chosen by the chip's mean colour, so two images of the same flat-ish colour
are "the same person" (distance 0) and different colours are strangers
(distance about 1.4). Use them with ``Engine(detector=..., embedder=...)``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .engine.types import DESCRIPTOR_DIM, Detection


class FakeDetector:
    name = "fake"

    def __init__(self, faces_per_image: int = 1) -> None:
        self.faces_per_image = faces_per_image

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        if image.size == 0 or int(image.max()) - int(image.min()) < 8:
            return []
        h, w = image.shape[:2]
        out = []
        for i in range(self.faces_per_image):
            size = min(w, h) * (0.6 / (i + 1))
            cx = w / 2 + i * size
            left, top = max(0.0, cx - size / 2), max(0.0, h / 2 - size / 2)
            out.append(Detection((left, top, min(w, left + size), min(h, top + size)), 99.0, 2.0, self.name))
        return out


class FakeEmbedder:
    name = "fake"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        out = np.zeros((len(chips), DESCRIPTOR_DIM), dtype=np.float32)
        for i, chip in enumerate(chips):
            key = tuple(int(v) // 32 for v in chip.reshape(-1, 3).mean(0))
            seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DESCRIPTOR_DIM)
            out[i] = v / np.linalg.norm(v)
        return out


def striped_image(colour: tuple[int, int, int], size: int = 200) -> np.ndarray:
    """A test image the fakes see as one sharp face of ``colour`` (thin dark border)."""
    img = np.zeros((size, size, 3), np.int16)
    img[4:-4, 4:-4] = colour
    # fine stripes (+-24) make the "face" sharp for the quality checks; the mean stays ``colour``
    img[4:-4:2, 4:-4] += 24
    img[5:-4:2, 4:-4] -= 24
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
