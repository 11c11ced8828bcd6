"""Cohort S-norm scoring (engine.scoring): never looser than raw, stricter where faces crowd, switchable."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import scoring
from faceledger.engine.calibration import load_table
from faceledger.engine.registry import MODEL_VERSION
from faceledger.engine.scoring import COHORT_MIN, Cohort, Scorer, sample_rows


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(load_table(MODEL_VERSION), "cohort")


def crowded_cohort(rng: np.random.Generator) -> tuple[Cohort, np.ndarray, np.ndarray]:
    """A cohort with a tight cluster (crowded region) and spread-out faces; descriptor-like scale (~0.6 apart)."""
    centre = unit(rng.standard_normal(128))
    dense = centre + 0.025 * rng.standard_normal((400, 128)).astype(np.float32)
    sparse = 0.05 * rng.standard_normal((600, 128)).astype(np.float32) + unit(rng.standard_normal((600, 128))) * 0.5
    mat = np.concatenate([dense, sparse]).astype(np.float32)
    return Cohort(mat, np.array([f"f{i}" for i in range(len(mat))], dtype=object)), dense, sparse


def test_shipped_table_and_versions(scorer: Scorer) -> None:
    assert scorer.enabled and scorer.version.startswith(scoring.METHOD)
    assert scorer.normalised is not None and scorer.normalised.meta["data"] == "lfw_dev"
    off = Scorer.load(load_table(MODEL_VERSION), "off")
    assert not off.enabled and off.version == "off" and off.report(None) == {"ScoreNormalization": "off"}
    with pytest.raises(ValueError, match="one of"):
        Scorer.load(load_table(MODEL_VERSION), "zscore")


def test_sample_rows_is_deterministic_and_bounded() -> None:
    assert list(sample_rows(5, 10)) == [0, 1, 2, 3, 4]
    rows = sample_rows(10_000, 2000)
    assert len(rows) == 2000 and len(set(rows.tolist())) == 2000 and rows.max() < 10_000
    assert np.array_equal(rows, sample_rows(10_000, 2000))


def test_never_looser_than_raw(scorer: Scorer) -> None:
    rng = np.random.default_rng(1)
    cohort, dense, sparse = crowded_cohort(rng)
    near = sparse[:20] + unit(rng.standard_normal((20, 128))) * 0.35
    probes = np.concatenate([dense[:20], sparse[:20]])
    targets = np.concatenate([dense[20:40], near])
    d = np.linalg.norm(probes - targets, axis=1)
    a, b = cohort.stats(probes), cohort.stats(targets)
    norm = scorer.similarity(d, a, b)
    raw = scorer.raw.similarity(d)
    assert np.all(norm <= raw + 1e-9)
    assert np.any(norm < raw - 1.0)  # and it does tighten somewhere


def test_crowded_pairs_need_more_evidence(scorer: Scorer) -> None:
    rng = np.random.default_rng(2)
    cohort, dense, sparse = crowded_cohort(rng)
    # two pairs at the same raw distance: one inside the crowded cluster, one out in the open
    p_dense = dense[0]
    q_dense = dense[0] + unit(rng.standard_normal(128)) * 0.35
    p_open = sparse[0]
    q_open = sparse[0] + unit(rng.standard_normal(128)) * 0.35
    sd = scorer.similarity(0.35, cohort.stats(p_dense), cohort.stats(q_dense))
    so = scorer.similarity(0.35, cohort.stats(p_open), cohort.stats(q_open))
    assert sd.item() < so.item() <= float(scorer.raw.similarity(0.35)) + 1e-9


def test_own_face_is_not_its_own_neighbour() -> None:
    rng = np.random.default_rng(3)
    cohort, dense, _ = crowded_cohort(rng)
    with_self = cohort.stats(dense[:1])
    without = cohort.stats(dense[:1], own_ids=["f0"])
    assert without.mu[0] > with_self.mu[0]  # distance 0 to itself no longer pulls the mean down


def test_small_cohorts_are_inactive(scorer: Scorer) -> None:
    small = Cohort(np.zeros((COHORT_MIN - 1, 128), np.float32), np.array(["x"] * (COHORT_MIN - 1), dtype=object))
    assert not scorer.active(small) and not scorer.active(None)
    assert scorer.report(small) == {"ScoreNormalization": "inactive", "CohortSize": COHORT_MIN - 1,
                                    "CohortMinimum": COHORT_MIN}


def test_a_missing_cohort_table_is_a_clear_model_error() -> None:
    import dataclasses

    from faceledger.errors import ModelFileError

    other = dataclasses.replace(load_table(MODEL_VERSION), model_version="dlib-resnet128-5pt-unknown-9")
    with pytest.raises(ModelFileError, match="FACELEDGER_SCORE_NORMALIZATION=off"):
        Scorer.load(other, "cohort")
    assert Scorer.load(other, "off").version == "off"  # switching it off needs no table
