"""The subgroup benchmark's pieces: same-photograph pairs, ratios with their interval bound, deployed scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from faceledger.engine.calibration import load_table
from faceledger.engine.registry import MODEL_VERSION
from faceledger.engine.scoring import Scorer
from faceledger.evaluation.deployed import collection_stats
from faceledger.evaluation.subgroups import group_rates, ratios, same_photographs


def test_same_photographs_are_found_and_different_ones_are_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a).save(tmp_path / "a_again.jpg", quality=90)  # the same photograph, re-encoded
    Image.fromarray(b).save(tmp_path / "b.png")
    same = same_photographs([str(tmp_path / n) for n in ("a.png", "a_again.jpg", "b.png")])
    assert same.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_group_rates_leave_out_same_photographs_and_ratio_bounds() -> None:
    rng = np.random.default_rng(1)
    v = rng.standard_normal((6, 128)).astype(np.float32) * 0.05
    v[1] = v[0]  # two rows of one photograph: a "false match" unless left out
    groups = ["g1"] * 3 + ["g2"] * 3
    ids = [str(i) for i in range(6)]
    scorer = Scorer.load(load_table(MODEL_VERSION), "off")
    sims = {"t": 57.14}
    same = np.zeros((6, 6), bool)
    counted = group_rates(v, groups, ids, sims, scorer)
    assert counted["g1"]["t"]["false_matches"] >= 1
    same[0, 1] = same[1, 0] = True
    left_out = group_rates(v, groups, ids, sims, scorer, same_photo=same)
    assert left_out["g1"]["same_photograph_pairs_excluded"] == 1 and left_out["g1"]["impostor_pairs"] == 2
    fake = {"a": {"impostor_pairs": 5000, "t": {"fmr": 0.01, "fmr_ci95": [0.008, 0.012]}},
            "b": {"impostor_pairs": 5000, "t": {"fmr": 0.001, "fmr_ci95": [0.0005, 0.002]}}}
    r = ratios(fake, sims)["t"]
    assert r["worst_best_ratio"] == 10 and abs(r["worst_best_ratio_lower_bound"] - 4.0) < 1e-9


def test_collection_stats_follow_the_runtime_minimum() -> None:
    scorer = Scorer.load(load_table(MODEL_VERSION), "cohort")
    rng = np.random.default_rng(2)
    assert collection_stats(scorer, rng.standard_normal((100, 128)).astype(np.float32)) is None  # too small
    stats = collection_stats(scorer, rng.standard_normal((600, 128)).astype(np.float32))
    assert stats is not None and len(stats) == 600 and np.all(stats.sigma > 0)
