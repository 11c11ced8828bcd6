"""Score labelled data as the service would: a set of images is one collection, its own cohort.

The service normalises each comparison against a sample of the enrolled
faces (``engine.scoring``); an evaluation that wants the deployed figures
treats the evaluated set (or the enrolled gallery) as that collection, each
face left out of its own neighbourhood, exactly as ``service.scores`` does.
"""

from __future__ import annotations

import numpy as np

from ..engine.normalization import CohortStats
from ..engine.scoring import Cohort, Scorer, sample_rows


def collection_cohort(vectors: np.ndarray) -> Cohort:
    """The run-time cohort of a collection holding ``vectors`` (row numbers stand in for face ids)."""
    rows = sample_rows(len(vectors))
    return Cohort(np.asarray(vectors, np.float32)[rows], rows.astype(object))


def collection_stats(scorer: Scorer, vectors: np.ndarray) -> CohortStats | None:
    """Neighbourhoods of every face of a collection, each left out of its own; None when not active."""
    cohort = collection_cohort(vectors)
    if not scorer.active(cohort):
        return None
    return cohort.stats(vectors, own_ids=list(np.arange(len(vectors)).astype(object)))


def file_stats(scorer: Scorer, vectors: np.ndarray, cohort: Cohort) -> CohortStats | None:
    """Neighbourhoods of faces against an operator-supplied cohort (none of them in it); None when not active."""
    if not scorer.active(cohort):
        return None
    return cohort.stats(vectors)


def pair_similarity(scorer: Scorer, d: np.ndarray, a: CohortStats | None, b: CohortStats | None) -> np.ndarray:
    """Similarity of distances ``d`` (any shape) between faces with neighbourhoods a and b (broadcast)."""
    if a is None or b is None:
        return np.asarray(scorer.similarity(d))
    return np.asarray(scorer.similarity(d, a, b))


def outer(stats: CohortStats, rows: np.ndarray | None = None, axis: int = 0) -> CohortStats:
    """Stats (of ``rows``) shaped as a column (axis 0) or a row (axis 1) for broadcasting against a matrix."""
    s = stats if rows is None else stats.take(rows)
    shape = (-1, 1) if axis == 0 else (1, -1)
    return CohortStats(s.mu.reshape(shape), s.sigma.reshape(shape))
