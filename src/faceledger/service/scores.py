"""Similarity for the service's comparisons: the raw calibration, tightened by cohort S-norm when it is on.

One place turns distances into (Similarity, estimated FMR) for CompareFaces,
the face and user searches, user association and video search, so every
operation scores alike (``engine.scoring`` has the method). The cohort is a
sample of the enrolled faces, cached until the collections change; a deleted
face leaves the cohort with the next comparison.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import numpy as np

from ..engine.calibration import similarity_from_fmr
from ..engine.normalization import CohortStats
from ..engine.scoring import COHORT_MAX, Cohort, Scorer, sample_rows
from ..store.vectors import DIM, VectorIndex

ALL = "*"  # the cohort of every collection, for CompareFaces


class Cohorts:
    """Per-collection (and all-collection) cohort samples, rebuilt when the index generation changes."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[object, Cohort]] = {}

    def _key(self, collection_id: str) -> object:
        if collection_id == ALL:
            return tuple((c, self.index.generation(c)) for c in self.index.collection_ids())
        return self.index.generation(collection_id)

    def get(self, collection_id: str) -> Cohort:
        key = self._key(collection_id)
        with self._lock:
            live = set(self.index.collection_ids())
            for gone in [c for c in self._cache if c != ALL and c not in live]:
                del self._cache[gone]  # a deleted collection's faces leave memory with it
            hit = self._cache.get(collection_id)
            if hit is not None and hit[0] == key:
                return hit[1]
        cohort = self._build(collection_id)
        with self._lock:
            self._cache[collection_id] = (key, cohort)
        return cohort

    def _build(self, collection_id: str) -> Cohort:
        if collection_id != ALL:
            ids, mat = self.index.sample(collection_id, sample_rows)
            return Cohort(mat, np.array(ids, dtype=object))
        sizes = {c: self.index.size(c) for c in self.index.collection_ids()}
        total = sum(sizes.values())
        parts_ids: list[str] = []
        parts: list[np.ndarray] = []
        for c, n in sizes.items():
            if n == 0:
                continue
            share = n if total <= COHORT_MAX else max(1, round(COHORT_MAX * n / total))
            ids, mat = self.index.sample(c, functools.partial(sample_rows, size=share))
            parts_ids += ids
            parts.append(mat)
        mat = np.concatenate(parts) if parts else np.zeros((0, DIM), np.float32)
        keep = sample_rows(len(mat))  # many small collections' shares can add up past COHORT_MAX
        return Cohort(mat[keep], np.array(parts_ids, dtype=object)[keep])


def matrix(vectors: list) -> np.ndarray:
    """Descriptors as an (n, dim) float32 matrix (a pack's dim; 128 when there are none)."""
    if len(vectors) == 0:
        return np.zeros((0, DIM), np.float32)
    return np.array(vectors, np.float32).reshape(len(vectors), -1)


@dataclass(frozen=True)
class Scores:
    """Similarity and estimated FMR per target, and how they were made (``report``).

    ``distance`` is the raw descriptor distance behind each score (to the best
    probe): where Similarity is capped at 100 it still orders strong matches.
    """

    similarity: np.ndarray
    fmr: np.ndarray
    report: dict
    distance: np.ndarray = field(default_factory=lambda: np.zeros(0))


def score(scorer: Scorer, cohort: Cohort | None, probes: np.ndarray, targets: np.ndarray,
          probe_ids: list[str] | None = None, target_ids: list[str] | None = None) -> Scores:
    """Scores of each target against its best probe (rows of ``probes``).

    ``probe_ids``/``target_ids``: face ids of enrolled faces, left out of their
    own neighbourhoods; ``None`` for faces that are not enrolled.
    """
    p = np.atleast_2d(np.asarray(probes, np.float64))
    t = np.atleast_2d(np.asarray(targets, np.float64))
    report = scorer.report(cohort)
    if len(t) == 0:
        return Scores(np.zeros(0), np.zeros(0), report)
    # (P, T) distances without a (P, T, 128) temporary: a user's 100 faces against thousands of hits
    d = np.sqrt(np.maximum((p * p).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2.0 * p @ t.T, 0.0))
    if scorer.active(cohort):
        assert cohort is not None
        a = cohort.stats(p, probe_ids)
        b = cohort.stats(t, target_ids)
        fmr = scorer.fmr(d, CohortStats(a.mu[:, None], a.sigma[:, None]), CohortStats(b.mu[None, :], b.sigma[None, :]))
    else:
        fmr = scorer.fmr(d)
    fmr = np.asarray(fmr)
    pick = np.argmin(fmr, axis=0)
    cols = np.arange(fmr.shape[1])
    best = fmr[pick, cols]
    return Scores(np.asarray(similarity_from_fmr(best), dtype=np.float64), best, report, d[pick, cols])
