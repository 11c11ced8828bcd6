"""Cohort score normalisation: make a distance mean the same false-match risk in dense and sparse regions.

A raw descriptor distance d(a, b) means different things in different parts of
the descriptor space: where faces crowd together (a "dense" region), strangers
sit closer, so a fixed distance threshold lets more of them through. Cohort
normalisation measures how crowded each face's neighbourhood is against a fixed
*cohort* of strangers' descriptors and rescales the distance by it:

* for a face x, the distances to its ``k`` nearest cohort descriptors give
  ``mu_x`` (their mean) and ``sigma_x`` (their standard deviation);
* ``method="snorm"`` (adaptive, symmetric S-norm on distances)::

      u = -((mu_a - d) / sigma_a + (mu_b - d) / sigma_b) / 2

* ``method="ratio"`` (distance relative to the neighbourhood radius)::

      u = d / ((mu_a + mu_b) / 2)

``u`` is a *normalised distance*: lower means more alike, exactly like the raw
distance, so it is calibrated to a false match rate with the same machinery
(:class:`~faceledger.engine.calibration.CalibrationTable`, whose ``distances``
axis then holds ``u``) and mapped to Similarity with the same formula. The
table on normalised distances is built here by :func:`build_normalised_table`
(all genuine and impostor pairs of a labelled set, like
``calibration.build.build_table`` does for raw distances).

No demographic label is used anywhere: the only inputs are descriptors.

The cohort and its calibration ship together as one ``.npz`` artefact
(:meth:`CohortNormalizer.save` / :func:`load_normalizer`) named after the model
version, e.g. ``calibration/dlib-resnet128-5pt-mirror-1-cohort.npz``. It must be
built from data whose licence allows shipping (lfw_dev), never from an
evaluation-only set.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .calibration import CalibrationTable
from .calibration.build import table_from_histograms

METHODS = ("snorm", "ratio")
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


def _sq_dist(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared distances in float64; ``b_sq`` (``(b * b).sum(1)``) may be passed when ``b`` is reused."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    if b_sq is None:
        b_sq = (b * b).sum(1)
    d2 = (a * a).sum(1)[:, None] + b_sq[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def neighbourhood_stats(vectors: np.ndarray, cohort: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
                        cohort_labels: np.ndarray | None = None, exclude_rows: np.ndarray | None = None,
                        cohort_sq: np.ndarray | None = None, block: int = 1024) -> CohortStats:
    """Mean and std of each vector's ``k`` nearest distances to ``cohort`` rows.

    ``exclude`` / ``cohort_labels``: a cohort row whose label equals the
    vector's label is not a neighbour (the face itself, or its identity).
    ``exclude_rows``: one cohort row number per vector (-1 for none) that is
    not its neighbour; the fast form of the same rule for one row each.
    ``cohort_sq``: the cohort's squared norms, when ``cohort`` is float64 and reused.
    """
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    mu = np.empty(len(v))
    sigma = np.empty(len(v))
    k = min(k, len(cohort) - 1)
    for start in range(0, len(v), block):
        stop = min(len(v), start + block)
        d = np.sqrt(_sq_dist(v[start:stop], cohort, cohort_sq))
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


@dataclass
class CohortNormalizer:
    """Normalise raw descriptor distances by each side's distance to a cohort of strangers.

    ``cohort``: (m, 128) descriptors of distinct people (one per identity);
    ``k``: how many nearest cohort descriptors describe a neighbourhood;
    ``method``: ``"snorm"`` or ``"ratio"`` (see the module docstring);
    ``cohort_labels``: optional identity per cohort row, used only by evaluation
    to leave a face's own identity out of its neighbourhood (``stats(exclude=...)``);
    ``table``: the calibration of the normalised distance, when built or loaded.
    """

    cohort: np.ndarray
    k: int = 100
    method: str = "snorm"
    cohort_labels: np.ndarray | None = None
    table: CalibrationTable | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cohort = np.ascontiguousarray(self.cohort, dtype=np.float32)
        if self.cohort.ndim != 2 or len(self.cohort) < 2:
            raise ValueError("the cohort must be a (m, d) array with m >= 2")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        if not 2 <= self.k <= len(self.cohort) - 1:
            raise ValueError(f"k must be between 2 and {len(self.cohort) - 1} for a cohort of {len(self.cohort)}")

    # -- neighbourhoods ---------------------------------------------------
    def stats(self, vectors: np.ndarray, exclude: np.ndarray | None = None, block: int = 1024) -> CohortStats:
        """Mean and std of each vector's ``k`` nearest cohort distances.

        ``exclude`` (evaluation only): one label per vector; cohort rows with the
        same label (``cohort_labels``) are left out, so a face is never its own
        neighbour and a cohort built from a labelled set can be scored on it.
        """
        if exclude is not None and self.cohort_labels is None:
            raise ValueError("exclude needs cohort_labels")
        return neighbourhood_stats(vectors, self.cohort, self.k, exclude=exclude, cohort_labels=self.cohort_labels,
                                   block=block)

    # -- scores -----------------------------------------------------------
    def normalised_distance(self, d: np.ndarray | float, a: CohortStats, b: CohortStats) -> np.ndarray:
        """The normalised distance u (lower = more alike) of raw distance(s) d between faces with stats a, b.

        Shapes broadcast: d (n,) with a, b of length n or 1, or d (n, m) with
        ``a.take(...)`` reshaped by the caller; see :meth:`pairwise`.
        """
        d = np.asarray(d, dtype=np.float64)
        if self.method == "snorm":
            return snorm_distance(d, a, b)
        return d / (0.5 * (a.mu + b.mu))

    def pairwise(self, x: np.ndarray, sx: CohortStats, y: np.ndarray, sy: CohortStats) -> np.ndarray:
        """(len(x), len(y)) normalised distances."""
        d = np.sqrt(_sq_dist(x, y))
        a = CohortStats(sx.mu[:, None], sx.sigma[:, None])
        b = CohortStats(sy.mu[None, :], sy.sigma[None, :])
        return self.normalised_distance(d, a, b)

    def max_raw_distance(self, u_threshold: float, a: CohortStats, b: CohortStats) -> np.ndarray:
        """The largest raw distance whose normalised distance is <= ``u_threshold`` (u is increasing in d).

        With a's stats for the probe and b's for the gallery's *extreme* stats
        (largest mu, largest sigma), this bounds the radius of a raw-distance
        index query before rescoring.
        """
        if self.method == "snorm":
            wa, wb = 1.0 / a.sigma, 1.0 / b.sigma
            return np.maximum((2.0 * u_threshold + a.mu * wa + b.mu * wb) / (wa + wb), 0.0)
        return np.maximum(u_threshold * 0.5 * (a.mu + b.mu), 0.0)

    # -- calibrated outputs -------------------------------------------------
    def _table(self) -> CalibrationTable:
        if self.table is None:
            raise ModelFileError("This normaliser has no calibration table; build one with build_normalised_table.")
        return self.table

    def fmr(self, d: np.ndarray | float, a: CohortStats, b: CohortStats) -> np.ndarray:
        return self._table().fmr(self.normalised_distance(d, a, b))

    def similarity(self, d: np.ndarray | float, a: CohortStats, b: CohortStats) -> np.ndarray:
        return self._table().similarity(self.normalised_distance(d, a, b))

    # -- artefact ---------------------------------------------------------
    def save(self, path: str | Path, *, dtype: type = np.float16) -> int:
        """Write cohort (as ``dtype``), parameters and calibration table to a compressed ``.npz``; returns bytes."""
        table = self._table()
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            cohort=self.cohort.astype(dtype),
            k=np.int32(self.k),
            method=np.str_(self.method),
            table=np.str_(json.dumps(table.to_json())),
            meta=np.str_(json.dumps(self.meta)),
        )
        data = buf.getvalue()
        Path(path).write_bytes(data)
        return len(data)


def load_normalizer(path: str | Path) -> CohortNormalizer:
    try:
        with np.load(path) as z:
            return CohortNormalizer(
                cohort=z["cohort"].astype(np.float32),
                k=int(z["k"]),
                method=str(z["method"]),
                table=CalibrationTable.from_json(json.loads(str(z["table"]))),
                meta=json.loads(str(z["meta"])),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFileError(f"Cannot read the cohort normaliser {path}: {exc}") from exc


def artefact_path(model_version: str) -> Path:
    return Path(str(resources.files("faceledger.engine.calibration") / f"{model_version}-cohort.npz"))


def load_for_model(model_version: str) -> CohortNormalizer | None:
    """The shipped normaliser for a model version, or None when none ships."""
    p = artefact_path(model_version)
    return load_normalizer(p) if p.is_file() else None


# -- calibration on normalised distances --------------------------------------
def normalised_pairs(
    norm: CohortNormalizer, desc: np.ndarray, labels: np.ndarray, stats: CohortStats, block: int = 512
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (genuine u, impostor u) blocks over all i < j pairs of a labelled set."""
    n = len(desc)
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows = np.arange(start, stop)
        u = norm.pairwise(desc[rows], stats.take(rows), desc, stats)
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


def build_normalised_table(
    norm: CohortNormalizer, desc: np.ndarray, labels: np.ndarray, model_version: str,
    stats: CohortStats | None = None, meta: dict | None = None, bins: int = GRID_BINS,
) -> CalibrationTable:
    """Calibrate ``norm``'s normalised distance on every pair of a labelled set (e.g. lfw_dev).

    When the cohort was drawn from the same set, pass ``stats`` computed with
    ``norm.stats(desc, exclude=labels)`` so no face sees its own identity.
    """
    if stats is None:
        stats = norm.stats(desc)
    # the grid spans the observed range; two passes (range, then histogram) keep memory flat
    lo, hi = math.inf, -math.inf
    for g, i in normalised_pairs(norm, desc, labels, stats):
        for arr in (g, i):
            if len(arr):
                lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    edges = np.linspace(lo - 1e-9, hi + 1e-9, bins + 1)
    imp = np.zeros(bins, dtype=np.int64)
    gens = []
    for g, i in normalised_pairs(norm, desc, labels, stats):
        imp += np.histogram(i, bins=edges)[0]
        gens.append(g)
    return table_from_scores(np.concatenate(gens), (edges, imp), model_version, meta)
