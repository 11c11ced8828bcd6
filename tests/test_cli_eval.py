"""The remaining local commands on small real slices: eval identify/calibrate/detection/subgroups, policy check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .conftest import data_path
from .test_cli import run

PEOPLE = {"Abel_Pacheco": 3, "Aaron_Peirsol": 2, "Abdoulaye_Wade": 2, "Aaron_Eckhart": 1, "Aaron_Guiel": 1}


def small_lfw(tmp_path: Path) -> Path:
    root = tmp_path / "lfw"
    for person, n in PEOPLE.items():
        (root / person).mkdir(parents=True)
        for i in range(1, n + 1):
            shutil.copy(data_path("lfw_dev", person, f"{person}_{i:04d}.jpg"), root / person)
    return root


def test_eval_identify_and_calibrate(tmp_path: Path) -> None:
    root = small_lfw(tmp_path)
    cache = tmp_path / "d.npz"
    out = run("eval", "identify", "--root", str(root), "--cache", str(cache), "--json", "--quiet", "--procs", "1")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["gallery_size"] == 3 and doc["mated_probes"] == 4 and doc["nonmated_probes"] == 2
    assert doc["rank1_hit_rate"] == 1.0 and doc["nonmated_with_candidate_at_default"] == 0
    cal = run("eval", "calibrate", "--root", str(root), "--cache", str(cache), "--out-dir", str(tmp_path / "t"),
              "--json", "--quiet")
    assert cal.returncode == 0, cal.stderr
    tables = json.loads(cal.stdout)
    assert {v["images_with_face"] for v in tables.values()} == {9}
    assert all(Path(v["path"]).is_file() for v in tables.values())


def test_eval_detection_and_subgroups(tmp_path: Path) -> None:
    ann = data_path("dlib_pascal_faces", "annotations.json")
    det = run("eval", "detection", "--annotations", str(ann), "--json")
    assert det.returncode == 0, det.stderr
    assert json.loads(det.stdout)["annotated"]["recall"] >= 0.95
    utk = data_path("utkface_dev")
    rows = (utk / "labels.csv").read_text().splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join([rows[0], *[r for r in rows[1:] if ",White," in r][:6],
                                 *[r for r in rows[1:] if ",Asian," in r][:6]]) + "\n")
    sub = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race",
              "--json", "--quiet", "--procs", "1")
    assert sub.returncode == 0, sub.stderr
    doc = json.loads(sub.stdout)
    assert set(doc["groups"]) == {"White", "Asian"}
    assert doc["groups"]["White"]["impostor_pairs"] == 15
    ci = doc["groups"]["Asian"]["compare_1to1"]["fmr_ci95"]
    assert 0 <= ci[0] <= ci[1] <= 1
    bad = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "nope")
    assert bad.returncode == 3 and "no column" in bad.stderr


def test_policy_check(tmp_path: Path) -> None:
    good = tmp_path / "policy.toml"
    good.write_text('version = "1"\n[purposes.general]\n[purposes.lead]\ncase_required = true\n')
    out = run("policy", "check", str(good), "--json")
    assert out.returncode == 0 and set(json.loads(out.stdout)["purposes"]) == {"general", "lead"}
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "1"\n[purposes.lead]\nmax_candidates = "many"\n')
    out = run("policy", "check", str(bad))
    assert out.returncode == 3 and "max_candidates must be of type int" in out.stderr


def test_eval_commands_score_raw_on_request(tmp_path: Path) -> None:
    root = small_lfw(tmp_path)
    cache = tmp_path / "d.npz"
    ident = run("eval", "identify", "--root", str(root), "--cache", str(cache), "--normalization", "off", "--json",
                "--quiet", "--procs", "1")
    assert ident.returncode == 0, ident.stderr
    assert "score_normalization" not in json.loads(ident.stdout)  # raw: the legacy figures only
    deployed = json.loads(run("eval", "identify", "--root", str(root), "--cache", str(cache), "--json",
                              "--quiet").stdout)
    assert deployed["score_normalization"] == "inactive"  # 3 gallery faces: too few for a cohort
    utk = data_path("utkface_dev")
    rows = (utk / "labels.csv").read_text().splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join([rows[0], *[r for r in rows[1:] if ",White," in r][:5]]) + "\n")
    sub = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race",
              "--normalization", "off", "--keep-duplicates", "--json", "--quiet", "--procs", "1")
    assert sub.returncode == 0, sub.stderr
    doc = json.loads(sub.stdout)
    assert doc["score_normalization"] == "off" and doc["same_photograph_pairs_excluded"] == 0
    assert doc["groups"]["White"]["impostor_pairs"] == 10 and doc["ratios"] == {}  # ratios need 1,000 pairs
    bad = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--normalization", "zscore")
    assert bad.returncode == 2 and "zscore" in bad.stderr


def test_serve_refuses_an_unknown_normalisation_cleanly(tmp_path: Path) -> None:
    import os
    import subprocess

    from .test_cli import CLI

    out = subprocess.run([*CLI, "serve", "--data", str(tmp_path / "data"), "--port", "1"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "FACELEDGER_SCORE_NORMALIZATION": "zscore"})
    assert out.returncode == 3 and "FACELEDGER_SCORE_NORMALIZATION" in out.stderr
    assert "Traceback" not in out.stderr  # no worker processes or half-open state left to complain at exit


def test_eval_subgroups_with_a_cohort_file_and_halves(tmp_path: Path) -> None:
    """An operator cohort makes 12 faces (too few to be their own cohort) normalised; --half takes every other row."""
    import numpy as np

    utk = data_path("utkface_dev")
    rows = (utk / "labels.csv").read_text().splitlines()
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join([rows[0], *[r for r in rows[1:] if ",White," in r][:6],
                                 *[r for r in rows[1:] if ",Asian," in r][:6]]) + "\n")
    cache = tmp_path / "utk.npz"
    own = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race", "--json",
              "--quiet", "--procs", "1", "--cache", str(cache))
    assert own.returncode == 0, own.stderr
    assert json.loads(own.stdout)["score_normalization"] == "inactive"  # 12 faces: their own cohort is too small
    vectors = np.load(cache)["mirror"]
    cohort = tmp_path / "cohort.npy"  # stands in for an operator's reference set: the faces jittered, 600 rows
    np.save(cohort, (np.repeat(vectors, 50, axis=0)
                     + np.random.default_rng(0).normal(0, 0.05, (600, 128))).astype(np.float32))
    filed = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race", "--json",
                "--quiet", "--procs", "1", "--cache", str(cache), "--cohort-file", str(cohort))
    assert filed.returncode == 0, filed.stderr
    doc = json.loads(filed.stdout)
    assert doc["score_normalization"].startswith("snorm-") and doc["cohort"] == "cohort.npy"
    half = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race", "--json",
               "--quiet", "--procs", "1", "--cache", str(cache), "--half", "second")
    assert json.loads(half.stdout)["images"] == 6
    np.save(cohort, np.zeros((600, 64), np.float32))
    bad = run("eval", "subgroups", "--root", str(utk), "--labels", str(labels), "--group-by", "race",
              "--quiet", "--procs", "1", "--cache", str(cache), "--cohort-file", str(cohort))
    assert bad.returncode == 3 and "(m, 128)" in bad.stderr
    few = run("eval", "cohort-file", "--root", str(utk), "--labels", str(labels), "--out", str(tmp_path / "c.npy"),
              "--quiet", "--procs", "1", "--cache", str(cache))
    assert few.returncode == 3 and "at least 500" in few.stderr
