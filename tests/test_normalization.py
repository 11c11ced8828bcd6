"""Cohort score normalisation: synthetic dense vs sparse clusters, shapes, monotonicity, artefact round trip."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine.normalization import (
    CohortNormalizer,
    CohortStats,
    build_normalised_table,
    load_normalizer,
)

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


def _fmr_by_cluster(world: dict, norm: CohortNormalizer | None, target: float = 0.01) -> tuple[float, float]:
    """FMR of each cluster's impostor pairs at the threshold giving ``target`` FMR over both pooled."""
    scores = []
    for name in ("dense", "sparse"):
        x = world[name]
        if norm is None:
            scores.append(_within(x))
        else:
            s = norm.stats(x)
            scores.append(norm.pairwise(x, s, x, s)[np.triu_indices(len(x), 1)])
    t = np.quantile(np.concatenate(scores), target)
    return float(np.mean(scores[0] <= t)), float(np.mean(scores[1] <= t))


def test_raw_distance_is_unfair_between_dense_and_sparse(world: dict) -> None:
    dense, sparse = _fmr_by_cluster(world, None)
    assert dense > 0.015 and sparse == 0.0  # every false match is in the dense cluster


@pytest.mark.parametrize("method", ["snorm", "ratio"])
def test_normalisation_equalises_fmr(world: dict, method: str) -> None:
    dense, sparse = _fmr_by_cluster(world, CohortNormalizer(world["cohort"], k=50, method=method))
    assert dense > 0 and sparse > 0
    assert max(dense, sparse) / min(dense, sparse) < 2.0


def test_stats_shapes_and_leave_out(world: dict) -> None:
    labels = np.arange(len(world["cohort"]))
    norm = CohortNormalizer(world["cohort"], k=10, cohort_labels=labels)
    s = norm.stats(world["dense"][:7])
    assert s.mu.shape == (7,) and s.sigma.shape == (7,) and np.all(s.sigma > 0)
    own = norm.stats(world["cohort"][:5])
    left_out = norm.stats(world["cohort"][:5], exclude=labels[:5])
    assert np.all(left_out.mu > own.mu)  # a face is no longer its own (distance 0) neighbour
    assert norm.pairwise(world["dense"][:3], s.take(np.arange(3)), world["dense"][:7], s).shape == (3, 7)


def test_pairwise_shape_and_symmetry(world: dict) -> None:
    norm = CohortNormalizer(world["cohort"], k=10)
    x = world["dense"][:6]
    s = norm.stats(x)
    u = norm.pairwise(x, s, x, s)
    assert u.shape == (6, 6)
    np.testing.assert_allclose(u, u.T, atol=1e-9)


@pytest.mark.parametrize("method", ["snorm", "ratio"])
def test_monotone_in_distance_and_bound_inverts(method: str, world: dict) -> None:
    norm = CohortNormalizer(world["cohort"], k=20, method=method)
    a = CohortStats(np.array([2.0]), np.array([0.3]))
    b = CohortStats(np.array([3.0]), np.array([0.5]))
    d = np.linspace(0, 5, 101)
    u = norm.normalised_distance(d, a, b)
    assert np.all(np.diff(u) > 0)
    d_max = norm.max_raw_distance(float(u[40]), a, b)
    np.testing.assert_allclose(d_max, d[40], atol=1e-9)


def test_table_is_monotone_and_roundtrips(tmp_path, world: dict) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((40, DIM)) * 3
    desc = np.vstack([_cluster(rng, c, 0.6, 4) for c in centres])
    labels = np.repeat(np.arange(40), 4)
    norm = CohortNormalizer(world["cohort"], k=20)
    norm.table = build_normalised_table(norm, desc, labels, "synthetic-1")
    t = norm.table
    assert np.all(np.diff(t.log10_fmr) >= 0) and np.all(np.diff(t.distances) > 0)
    assert t.meta["impostor_pairs"] == 160 * 159 // 2 - 40 * 6 and t.meta["genuine_pairs"] == 40 * 6
    s = norm.stats(desc[:2])
    sims = norm.similarity(np.array([0.5, 1.0, 2.0]), s.take(0), s.take(1))
    assert np.all(np.diff(sims) <= 0)
    path = tmp_path / "c.npz"
    norm.save(path)
    back = load_normalizer(path)
    assert back.k == 20 and back.method == "snorm" and back.table is not None
    np.testing.assert_allclose(back.stats(desc).mu, norm.stats(desc).mu, atol=5e-3)  # float16 cohort
    np.testing.assert_allclose(back.table.log10_fmr, t.log10_fmr, atol=1e-4)


def test_rejects_bad_parameters(world: dict) -> None:
    with pytest.raises(ValueError):
        CohortNormalizer(world["cohort"], k=1)
    with pytest.raises(ValueError):
        CohortNormalizer(world["cohort"], method="tnorm")
    with pytest.raises(ValueError):
        CohortNormalizer(world["cohort"], k=5).stats(world["dense"], exclude=np.zeros(150))
