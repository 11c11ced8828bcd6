"""Cohort S-norm primitives: neighbourhood statistics, the normalised distance, and its calibration table.

A raw descriptor distance d(a, b) means different things in different parts of
the descriptor space: where faces crowd together (a "dense" region), strangers
sit closer, so a fixed distance threshold lets more of them through. Cohort
normalisation measures how crowded each face's neighbourhood is against a
*cohort* of descriptors and rescales the distance by it:

* for a face x, the distances to its ``k`` nearest cohort descriptors give
  ``mu_x`` (their mean) and ``sigma_x`` (their standard deviation)
  (:func:`neighbourhood_stats`);
* the symmetric S-norm on distances (:func:`snorm_distance`)::

      u = -((mu_a - d) / sigma_a + (mu_b - d) / sigma_b) / 2

``u`` is a *normalised distance*: lower means more alike, exactly like the raw
distance, so it is calibrated to a false match rate with the same machinery
(:class:`~faceledger.engine.calibration.CalibrationTable`, whose ``distances``
axis then holds ``u``). :func:`build_snorm_table` builds that table on every
pair of a labelled set. The run-time rule (which cohort, which ``k``, never
looser than raw) lives in :mod:`faceledger.engine.scoring`; this module only
computes. No demographic label is used anywhere: the only inputs are descriptors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .calibration import CalibrationTable
from .calibration.build import table_from_histograms
from .distance import pair_distances

GRID_BINS = 3000
SIGMA_FLOOR = 1e-3  # a degenerate neighbourhood (k identical distances) must not divide by zero


@dataclass(frozen=True)
class CohortStats:
    """Per-face neighbourhood statistics against the cohort: mean and std of the k nearest distances."""

    mu: np.ndarray  # (n,)
    sigma: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.mu)

    def take(self, index: np.ndarray | int) -> CohortStats:
        return CohortStats(np.atleast_1d(self.mu[index]), np.atleast_1d(self.sigma[index]))


def neighbourhood_stats(vectors: np.ndarray, cohort: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
                        cohort_labels: np.ndarray | None = None, exclude_rows: np.ndarray | None = None,
                        cohort_sq: np.ndarray | None = None, block: int = 1024,
                        metric: str = "euclidean") -> CohortStats:
    """Mean and std of each vector's ``k`` nearest distances to ``cohort`` rows.

    ``exclude`` / ``cohort_labels``: a cohort row whose label equals the
    vector's label is not a neighbour (the face itself, or its identity).
    ``exclude_rows``: one cohort row number per vector (-1 for none) that is
    not its neighbour; the fast form of the same rule for one row each.
    ``cohort_sq``: the cohort's squared norms, when ``cohort`` is float64 and reused (Euclidean only).
    ``metric``: the pack's (engine/distance.py); neighbourhoods are distances in it.
    """
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    mu = np.empty(len(v))
    sigma = np.empty(len(v))
    k = min(k, len(cohort) - 1)
    for start in range(0, len(v), block):
        stop = min(len(v), start + block)
        d = pair_distances(v[start:stop], cohort, metric, cohort_sq)
        if exclude is not None and cohort_labels is not None:
            d[np.asarray(exclude[start:stop])[:, None] == np.asarray(cohort_labels)[None, :]] = np.inf
        if exclude_rows is not None:
            rows = np.asarray(exclude_rows[start:stop])
            hit = np.nonzero(rows >= 0)[0]
            d[hit, rows[hit]] = np.inf
        top = np.partition(d, k - 1, axis=1)[:, :k]
        if not np.isfinite(top).all():  # fewer than k rows left after exclusion: use those there are
            top = np.where(np.isfinite(top), top, np.nan)
            mu[start:stop] = np.nanmean(top, axis=1)
            sigma[start:stop] = np.maximum(np.nanstd(top, axis=1), SIGMA_FLOOR)
            continue
        mu[start:stop] = top.mean(1)
        sigma[start:stop] = np.maximum(top.std(1), SIGMA_FLOOR)
    return CohortStats(mu, sigma)


def snorm_distance(d: np.ndarray | float, a: CohortStats, b: CohortStats) -> np.ndarray:
    """Symmetric S-norm on distances: ``-((mu_a - d)/sigma_a + (mu_b - d)/sigma_b) / 2`` (lower = more alike)."""
    d = np.asarray(d, dtype=np.float64)
    return -0.5 * ((a.mu - d) / a.sigma + (b.mu - d) / b.sigma)


# -- calibration on normalised distances --------------------------------------
def pairwise_snorm(x: np.ndarray, sx: CohortStats, y: np.ndarray, sy: CohortStats,
                   metric: str = "euclidean") -> np.ndarray:
    """(len(x), len(y)) S-norm distances between two sets of faces with their neighbourhoods."""
    d = pair_distances(x, y, metric)
    return snorm_distance(d, CohortStats(sx.mu[:, None], sx.sigma[:, None]),
                          CohortStats(sy.mu[None, :], sy.sigma[None, :]))


def snorm_pairs(
    desc: np.ndarray, labels: np.ndarray, stats: CohortStats, block: int = 512, metric: str = "euclidean",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (genuine u, impostor u) blocks over all i < j pairs of a labelled set."""
    n = len(desc)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = np.arange(start, stop)
        u = pairwise_snorm(desc[rows], stats.take(rows), desc, stats, metric)
        upper = np.arange(n)[None, :] > rows[:, None]
        same = labels[rows][:, None] == labels[None, :]
        yield u[upper & same], u[upper & ~same]


def table_from_scores(
    genuine: np.ndarray, impostor_hist: tuple[np.ndarray, np.ndarray], model_version: str, meta: dict | None = None
) -> CalibrationTable:
    """A CalibrationTable over a normalised-distance grid, from impostor histogram (edges, counts) and genuine u.

    Same construction as ``calibration.build.build_table``: FMR(u) is the share
    of impostor pairs at u' < grid edge, measured where at least MIN_COUNT
    impostor pairs lie below, and extrapolated below that with a straight line
    of log10 FMR on u fitted over FMR 1e-6..1e-3; monotone by construction.
    """
    edges, imp = impostor_hist
    gen_hist = np.histogram(np.clip(genuine, edges[0], edges[-1] - 1e-12), bins=edges)[0]
    return table_from_histograms(edges, gen_hist, imp, model_version, meta, min_slope=1e-6)


def build_snorm_table(
    desc: np.ndarray, labels: np.ndarray, stats: CohortStats, model_version: str,
    meta: dict | None = None, bins: int = GRID_BINS, metric: str = "euclidean",
) -> CalibrationTable:
    """Calibrate the S-norm distance on every pair of a labelled set (e.g. lfw_dev).

    ``stats`` are the set's neighbourhoods, computed by the caller under the
    run-time rule (when the cohort is drawn from the same set, with each face
    left out of its own neighbourhood).
    """
    # the grid spans the observed range; two passes (range, then histogram) keep memory flat
    lo, hi = math.inf, -math.inf
    for g, i in snorm_pairs(desc, labels, stats, metric=metric):
        for arr in (g, i):
            if len(arr):
                lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    edges = np.linspace(lo - 1e-9, hi + 1e-9, bins + 1)
    imp = np.zeros(bins, dtype=np.int64)
    gens = []
    for g, i in snorm_pairs(desc, labels, stats, metric=metric):
        imp += np.histogram(i, bins=edges)[0]
        gens.append(g)
    table = table_from_scores(np.concatenate(gens), (edges, imp), model_version, meta)
    return table.for_descriptors(desc.shape[1], metric)
