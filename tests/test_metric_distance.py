"""engine/distance.py: the one distance of a pack's metric, and a cosine pack calibrated and scored with it."""

from __future__ import annotations

import numpy as np

from faceledger.engine.calibration.build import build_table
from faceledger.engine.distance import pair_distances
from faceledger.engine.scoring import Scorer, build_cohort_table
from faceledger.service.scores import score


def test_euclidean_is_the_arithmetic_the_built_in_pack_always_used() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((7, 128)).astype(np.float32), rng.standard_normal((9, 128)).astype(np.float32)
    p, t = a.astype(np.float64), b.astype(np.float64)
    old = np.sqrt(np.maximum((p * p).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2.0 * p @ t.T, 0.0))
    assert np.array_equal(pair_distances(a, b), old)  # bit for bit


def test_cosine_is_one_minus_cos_whatever_the_norms() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((4, 192)), rng.standard_normal((5, 192))
    want = 1 - (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(pair_distances(3 * a, 0.5 * b, "cosine"), want, atol=1e-12)
    assert pair_distances(a[:1], a[:1], "cosine")[0, 0] < 1e-12
    assert abs(pair_distances(a[:1], -a[:1], "cosine")[0, 0] - 2.0) < 1e-12


def test_a_cosine_pack_is_calibrated_and_scored_in_its_metric() -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((150, 192))
    desc = np.repeat(centres, 4, axis=0) + 0.5 * rng.standard_normal((600, 192))
    desc = (desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
    labels = np.repeat(np.arange(150), 4)
    raw = build_table(desc, labels, "acme-192", metric="cosine")
    assert (raw.dim, raw.metric) == (192, "cosine") and raw.distances[-1] >= 1.99
    assert raw.to_json()["metric"] == "cosine" and raw.to_json()["dim"] == 192
    cohort = build_cohort_table(desc, labels, "acme-192", metric="cosine")
    assert (cohort.dim, cohort.metric) == (192, "cosine")
    scorer = Scorer(raw.check_for("acme-192", 192, "cosine"), cohort.check_for("acme-192", 192, "cosine"))
    s = score(scorer, None, desc[0], desc[1:8])
    np.testing.assert_allclose(s.distance, pair_distances(desc[:1], desc[1:8], "cosine")[0])
    assert s.similarity[0] > s.similarity[5]  # a mate (same centre) above a stranger
