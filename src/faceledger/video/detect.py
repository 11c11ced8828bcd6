"""The detector a video frame gets: HOG, plus one cheap CNN pass for large faces HOG missed.

Still images fall back to the MMOD CNN at full detection scale when HOG finds
nothing (about 3 s for a 640x360 frame on one core): affordable once per
photo, not four times per second of video. Video frames instead get the CNN
at a low resolution that only finds faces at least ``min_fraction`` of the
frame's shorter side (close-ups and turned heads, which HOG misses most),
for about 0.4 s (640x360). Small faces rely on HOG and on tracking across samples.

This module adapts detectors only; it must not change what still images get.
"""

from __future__ import annotations

import numpy as np

from ..engine.detect import DETECTOR_WINDOW_PX, MmodDetector
from ..engine.types import Detection, Detector

FALLBACKS = ("off", "large", "full")


class LargeFaceFallback:
    """``primary`` first; when it finds nothing, the CNN looking for large faces only."""

    def __init__(self, primary: Detector, min_fraction: float = 0.5) -> None:
        self.primary = primary
        self.name = primary.name
        self.min_fraction = min_fraction
        self._cnn: MmodDetector | None = None

    def detect(self, image: np.ndarray, scale: float) -> list[Detection]:
        hits = self.primary.detect(image, scale)
        if hits:
            return hits
        if self._cnn is None:
            self._cnn = MmodDetector()
        smallest = self.min_fraction * min(image.shape[0], image.shape[1])
        return self._cnn.detect(image, min(scale, DETECTOR_WINDOW_PX / max(smallest, 1.0)))
