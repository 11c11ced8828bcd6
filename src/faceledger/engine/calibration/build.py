"""Build a calibration table from labelled descriptors (all pairs, exactly).

Given descriptors and identity labels, count every genuine pair (same label)
and every impostor pair (different labels) into fine distance histograms, in
blocks so tens of millions of pairs fit in memory, then turn the cumulative
counts into FMR(d) and FNMR(d).
"""

from __future__ import annotations

import math

import numpy as np

from ..distance import check_metric, pair_distances
from . import CalibrationTable

GRID_STEP = 0.0025
GRID_MAX = 1.6
MIN_COUNT = 20  # impostor pairs needed before an FMR is taken as measured
FIT_FMR_RANGE = (1e-6, 1e-3)


def pair_histograms(
    desc: np.ndarray, labels: np.ndarray, *, step: float = GRID_STEP, dmax: float = GRID_MAX, block: int = 512,
    metric: str = "euclidean",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histograms of genuine and impostor distances (in ``metric``) over all i < j pairs."""
    edges = np.arange(0.0, dmax + step, step)
    gen = np.zeros(len(edges) - 1, dtype=np.int64)
    imp = np.zeros(len(edges) - 1, dtype=np.int64)
    x = desc.astype(np.float64)
    sq = (x * x).sum(1)
    n = len(x)
    for start in range(0, n, block):
        stop = min(n, start + block)
        if metric == "cosine":
            d = pair_distances(x[start:stop], x, "cosine")
        else:  # the built-in pack's arithmetic, unchanged
            d2 = sq[start:stop, None] + sq[None, :] - 2.0 * x[start:stop] @ x.T
            d = np.sqrt(np.maximum(d2, 0.0))
        rows = np.arange(start, stop)[:, None]
        upper = np.arange(n)[None, :] > rows
        same = labels[start:stop, None] == labels[None, :]
        gen += np.histogram(np.minimum(d[upper & same], dmax - 1e-9), bins=edges)[0]
        imp += np.histogram(np.minimum(d[upper & ~same], dmax - 1e-9), bins=edges)[0]
    return edges, gen, imp


def build_table(
    desc: np.ndarray, labels: np.ndarray, model_version: str, meta: dict | None = None, metric: str = "euclidean",
) -> CalibrationTable:
    """The table of ``model_version`` from its (n, dim) descriptors, saying their dim and metric.

    Cosine distances lie in [0, 2], so their grid runs to 2 (Euclidean: GRID_MAX).
    """
    check_metric(metric)
    edges, gen, imp = pair_histograms(desc, labels, metric=metric, dmax=2.0 if metric == "cosine" else GRID_MAX)
    return table_from_histograms(edges, gen, imp, model_version, meta).for_descriptors(desc.shape[1], metric)


def table_from_histograms(
    edges: np.ndarray, gen: np.ndarray, imp: np.ndarray, model_version: str, meta: dict | None = None,
    *, min_slope: float = 1.0,
) -> CalibrationTable:
    """FMR and FNMR over the grid ``edges[1:]`` from genuine and impostor score histograms.

    FMR is measured where at least MIN_COUNT impostor pairs lie below, and
    extrapolated below that along a straight line of log10 FMR fitted over
    FMR 1e-6..1e-3 (slope at least ``min_slope``); monotone by construction.
    """
    grid = edges[1:]  # FMR(d) counts pairs with distance < edge
    imp_cum = np.cumsum(imp)
    n_imp = int(imp_cum[-1])
    n_gen = int(gen.sum())
    fmr = imp_cum / max(n_imp, 1)
    fnmr = 1.0 - np.cumsum(gen) / max(n_gen, 1)
    measured = np.nonzero(imp_cum >= MIN_COUNT)[0]
    first = int(measured[0]) if len(measured) else len(grid) - 1
    log_fmr = np.full(len(grid), np.nan)
    log_fmr[first:] = np.log10(np.maximum(fmr[first:], 1e-300))
    lo, hi = math.log10(FIT_FMR_RANGE[0]), math.log10(FIT_FMR_RANGE[1])
    sel = np.nonzero((log_fmr >= lo) & (log_fmr <= hi))[0]
    if len(sel) < 3:
        sel = np.arange(first, min(first + 10, len(grid)))
    slope, intercept = np.polyfit(grid[sel], log_fmr[sel], 1)
    slope = max(float(slope), min_slope)
    for i in range(first - 1, -1, -1):
        log_fmr[i] = min(intercept + slope * grid[i], log_fmr[i + 1])  # keep monotone
    log_fmr = np.maximum.accumulate(log_fmr)
    info = dict(meta or {})
    info.update(
        genuine_pairs=n_gen,
        impostor_pairs=n_imp,
        tail_fit={"slope": round(slope, 4), "intercept": round(float(intercept), 4)},
        smallest_measured_fmr=float(10 ** log_fmr[first]),
    )
    return CalibrationTable(model_version=model_version, distances=grid, log10_fmr=log_fmr, fnmr=fnmr,
                            measured_upto_index=first, meta=info)
