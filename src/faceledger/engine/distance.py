"""Descriptor distances in a pack's metric: one function, so index, scoring and calibration agree.

``euclidean`` (dlib's ResNet, the built-in pack): ``||a - b||``.
``cosine`` (packs whose manifest says so): ``1 - cos(a, b)`` in [0, 2], on
L2-normalised rows (the engine already emits unit vectors for such packs; the
rows are normalised again here so a stray non-unit vector cannot skew a score).
Lower is more alike in both. Shapes: ``a`` (n, dim), ``b`` (m, dim); result
(n, m) float64. This module holds no thresholds and no policy.
"""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "cosine")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    norms = np.sqrt((x * x).sum(1))
    return x / np.where(norms > 0, norms, 1.0)[:, None]


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    return metric


def pair_distances(a: np.ndarray, b: np.ndarray, metric: str = "euclidean",
                   b_sq: np.ndarray | None = None) -> np.ndarray:
    """(len(a), len(b)) distances; ``b_sq`` (``(b * b).sum(1)``, float64) may be passed when ``b`` is reused.

    The Euclidean path is the arithmetic the built-in pack always used (float64,
    ``|a|² + |b|² - 2 a·b`` clipped at 0, square root), so its scores are unchanged bit for bit.
    """
    if check_metric(metric) == "cosine":
        return np.clip(1.0 - unit_rows(a) @ unit_rows(b).T, 0.0, 2.0)
    a = np.atleast_2d(a).astype(np.float64, copy=False)
    b = np.atleast_2d(b).astype(np.float64, copy=False)
    if b_sq is None:
        b_sq = (b * b).sum(1)
    return np.sqrt(np.maximum((a * a).sum(1)[:, None] + b_sq[None, :] - 2.0 * a @ b.T, 0.0))
