"""Cohort S-norm primitives: synthetic dense vs sparse clusters, shapes, monotonicity, the calibration table."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine.normalization import (
    CohortStats,
    build_snorm_table,
    neighbourhood_stats,
    pairwise_snorm,
    snorm_distance,
)
from faceledger.engine.scoring import build_cohort_table

DIM = 16


def _cluster(rng: np.random.Generator, centre: np.ndarray, spread: float, n: int) -> np.ndarray:
    return (centre + spread * rng.standard_normal((n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def world() -> dict:
    rng = np.random.default_rng(7)
    dense_c, sparse_c = np.zeros(DIM), np.full(DIM, 10.0)
    cohort = np.vstack([_cluster(rng, dense_c, 0.5, 200), _cluster(rng, sparse_c, 1.0, 200)])
    return {"cohort": cohort, "dense": _cluster(rng, dense_c, 0.5, 150), "sparse": _cluster(rng, sparse_c, 1.0, 150)}


def _within(x: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    return d[np.triu_indices(len(x), 1)]


def _fmr_by_cluster(world: dict, k: int | None, target: float = 0.01) -> tuple[float, float]:
    """FMR of each cluster's impostor pairs at the threshold giving ``target`` FMR over both pooled."""
    scores = []
    for name in ("dense", "sparse"):
        x = world[name]
        if k is None:
            scores.append(_within(x))
        else:
            s = neighbourhood_stats(x, world["cohort"], k)
            scores.append(pairwise_snorm(x, s, x, s)[np.triu_indices(len(x), 1)])
    t = np.quantile(np.concatenate(scores), target)
    return float(np.mean(scores[0] <= t)), float(np.mean(scores[1] <= t))


def test_raw_distance_is_unfair_between_dense_and_sparse(world: dict) -> None:
    dense, sparse = _fmr_by_cluster(world, None)
    assert dense > 0.015 and sparse == 0.0  # every false match is in the dense cluster


def test_snorm_equalises_fmr(world: dict) -> None:
    dense, sparse = _fmr_by_cluster(world, 50)
    assert dense > 0 and sparse > 0
    assert max(dense, sparse) / min(dense, sparse) < 2.0


def test_stats_shapes_and_leave_out(world: dict) -> None:
    cohort = world["cohort"]
    labels = np.arange(len(cohort))
    s = neighbourhood_stats(world["dense"][:7], cohort, 10)
    assert s.mu.shape == (7,) and s.sigma.shape == (7,) and np.all(s.sigma > 0)
    own = neighbourhood_stats(cohort[:5], cohort, 10)
    by_label = neighbourhood_stats(cohort[:5], cohort, 10, exclude=labels[:5], cohort_labels=labels)
    by_row = neighbourhood_stats(cohort[:5], cohort, 10, exclude_rows=np.arange(5))
    assert np.all(by_label.mu > own.mu)  # a face is no longer its own (distance 0) neighbour
    np.testing.assert_allclose(by_row.mu, by_label.mu)  # the fast form of the same rule
    assert pairwise_snorm(world["dense"][:3], s.take(np.arange(3)), world["dense"][:7], s).shape == (3, 7)


def test_pairwise_shape_and_symmetry(world: dict) -> None:
    x = world["dense"][:6]
    s = neighbourhood_stats(x, world["cohort"], 10)
    u = pairwise_snorm(x, s, x, s)
    assert u.shape == (6, 6)
    np.testing.assert_allclose(u, u.T, atol=1e-9)


def test_snorm_is_monotone_in_distance() -> None:
    a = CohortStats(np.array([2.0]), np.array([0.3]))
    b = CohortStats(np.array([3.0]), np.array([0.5]))
    u = snorm_distance(np.linspace(0, 5, 101), a, b)
    assert np.all(np.diff(u) > 0)


def test_table_is_monotone_and_counts_every_pair(world: dict) -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, DIM)) * 3
    desc = np.vstack([_cluster(rng, c, 0.6, 4) for c in centres])
    labels = np.repeat(np.arange(40), 4)
    stats = neighbourhood_stats(desc, world["cohort"], 20)
    t = build_snorm_table(desc, labels, stats, "synthetic-1")
    assert np.all(np.diff(t.log10_fmr) >= 0) and np.all(np.diff(t.distances) > 0)
    assert t.meta["impostor_pairs"] == 160 * 159 // 2 - 40 * 6 and t.meta["genuine_pairs"] == 40 * 6
    sims = t.similarity(snorm_distance(np.array([0.5, 1.0, 2.0]), stats.take(0), stats.take(1)))
    assert np.all(np.diff(sims) <= 0)


def test_cohort_table_follows_the_run_time_rule() -> None:
    """``eval calibrate``'s cohort table: the set is its own cohort, each face left out of its neighbours."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((60, DIM)) * 3
    desc = np.vstack([_cluster(rng, c, 0.6, 5) for c in centres])
    labels = np.repeat(np.arange(60), 5)
    t = build_cohort_table(desc, labels, "synthetic-2")
    assert t.model_version == "synthetic-2-cohort"
    assert t.meta["cohort_size"] == len(desc) and t.meta["k"] == 200
    assert t.meta["genuine_pairs"] == 60 * 10
