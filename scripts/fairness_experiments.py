"""Reproduce the figures of docs/fairness.md: cohort score normalisation before/after.

Tuning data: lfw_dev only (cohort, k, calibration). utkface_dev is measured
only, and only with --utk, for the fixed list of candidates below (no search
over parameters against it). Writes JSON to .cache/fairness/ and prints
markdown tables.

Usage: .venv/bin/python scripts/fairness_experiments.py [--sweep] [--utk] [--artefact]
  --sweep     the lfw_dev-only sweep over method, k and cohort size
  --utk       measure the final candidates per race/gender group on utkface_dev
  --artefact  write the S-norm cohort artefact (float16) under .cache/fairness/ and report its size
Set OMP_NUM_THREADS/OPENBLAS_NUM_THREADS to limit cores (the script uses numpy only).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from faceledger.engine.calibration import CalibrationTable, load_table
from faceledger.engine.normalization import CohortNormalizer, CohortStats
from faceledger.evaluation import fairness as F
from faceledger.evaluation.embedding import load_cache
from faceledger.evaluation.pairs import read_pairs

MODEL = "dlib-resnet128-5pt-mirror-1"
OUT = os.path.join(".cache", "fairness")

# The candidates measured on utkface_dev (fixed before measuring; see docs/fairness.md).
CANDIDATES: list[dict] = [
    {"name": "raw (deployed)", "method": "raw"},
    {"name": "S-norm k=100, lfw cohort 2883", "method": "snorm", "k": 100},
    {"name": "S-norm k=100, lfw cohort, never looser than raw", "method": "snorm", "k": 100, "and_raw": True},
    {"name": "S-norm k=100, collection as its own cohort", "method": "snorm", "k": 100, "self_cohort": True},
]
SWEEP: list[dict] = (
    [{"name": f"S-norm k={k}", "method": "snorm", "k": k} for k in (25, 50, 100, 200, 300)]
    + [{"name": f"S-norm k=100, cohort {m}", "method": "snorm", "k": 100, "size": m} for m in (1000, 2000)]
    + [{"name": "S-norm k=100, float16 cohort", "method": "snorm", "k": 100, "float16": True}]
    + [{"name": f"ratio k={k}", "method": "ratio", "k": k} for k in (25, 100)]
)


def build(cfg: dict, lfw: F.Lfw, raw: CalibrationTable) -> tuple[CohortNormalizer | None, CalibrationTable,
                                                                  CohortStats | None]:
    if cfg["method"] == "raw":
        return None, raw, None
    norm = F.make_normalizer(lfw, k=cfg["k"], method=cfg["method"], size=cfg.get("size"),
                             dtype=np.float16 if cfg.get("float16") else np.float32,
                             all_images=bool(cfg.get("self_cohort")))
    stats = F.calibrate_on_lfw(norm, lfw, MODEL)
    assert norm.table is not None
    return norm, norm.table, stats


def lfw_row(cfg: dict, lfw: F.Lfw, raw: CalibrationTable, pairs: list, density: np.ndarray) -> dict:
    t0 = time.time()
    norm, table, stats = build(cfg, lfw, raw)
    and_raw = raw if cfg.get("and_raw") else None
    row = {"cfg": cfg, "operating_points": {k: round(v, 4) for k, v in F.operating_points(table).items()},
           "pairs": F.lfw_pairs(norm, table, lfw, stats, pairs, raw_table=and_raw),
           "open_set": F.lfw_open_set(norm, table, lfw, stats, raw_table=and_raw),
           "density_strata": F.density_strata(norm, table, lfw, stats, density)}
    row["seconds"] = round(time.time() - t0, 1)
    return row


def utk_row(cfg: dict, lfw: F.Lfw, raw: CalibrationTable, uv: np.ndarray, ug: list[str]) -> dict:
    norm, table, _ = build(cfg, lfw, raw)
    if cfg.get("self_cohort"):
        assert norm is not None
        # the measured collection is its own cohort (nothing kept: it lives only in this process)
        norm = CohortNormalizer(cohort=uv, k=norm.k, method=norm.method, cohort_labels=np.arange(len(uv)),
                                table=norm.table)
    return {"cfg": cfg, **F.utk_group_rates(norm, table, uv, ug, raw_table=raw if cfg.get("and_raw") else None,
                                            self_cohort=bool(cfg.get("self_cohort")))}


def lfw_table(rows: list[dict]) -> str:
    g = f"search_1toN_gallery_{F.GALLERY}"
    lines = ["| configuration | 10-fold acc | TAR @1e-4 (1:1) | TAR @1e-6 (1:N) | open-set mated hit @default "
             "| FNIR @FPIR 1% | density-strata FMR @1e-4 (min..max, ratio) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        p, o, s = r["pairs"], r["open_set"], r["density_strata"]["compare_1to1"]
        lines.append(f"| {r['cfg']['name']} | {p['accuracy_10fold']:.4f} | {p['tar_compare_1to1']:.3f} | "
                     f"{p[f'tar_{g}']:.3f} | {o['mated_hit_rate_at_default']:.3f} | {o['fnir_at_fpir_0.01']:.3f} | "
                     f"{min(s['fmr']):.1e}..{max(s['fmr']):.1e} ({s['worst_best_ratio']:.1f}) |")
    return "\n".join(lines)


def utk_table(rows: list[dict]) -> str:
    names = list(rows[0]["thresholds"])
    groups = list(rows[0]["groups"])
    out = []
    for n in names:
        out.append(f"\n{n} (promised FMR {rows[0]['thresholds'][n]['promised_fmr']:.0e}); false matches in brackets\n")
        out.append("| group | pairs | " + " | ".join(r["cfg"]["name"] for r in rows) + " |")
        out.append("|---|---|" + "---|" * len(rows))
        for grp in groups:
            cells = [f"{r['groups'][grp][n]['fmr']:.1e} ({r['groups'][grp][n]['false_matches']})" for r in rows]
            out.append(f"| {grp} | {rows[0]['groups'][grp]['impostor_pairs']} | " + " | ".join(cells) + " |")
        out.append("| worst/best | | " + " | ".join(f"{r['ratios'][n]['worst_best_ratio']:.1f}" for r in rows) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--utk", action="store_true")
    ap.add_argument("--artefact", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    paths = F.default_paths(".")
    lfw = F.load_lfw(load_cache(paths["lfw_cache"]))
    pairs = read_pairs(paths["pairs"])
    raw = load_table(MODEL)
    # label-free density proxy for the lfw_dev strata: mean distance to the 20 nearest cohort strangers
    density = F.make_normalizer(lfw, k=20, method="ratio").stats(lfw.vectors, exclude=lfw.labels).mu
    configs = CANDIDATES + (SWEEP if args.sweep else [])
    rows = [lfw_row(c, lfw, raw, pairs, density) for c in configs]
    with open(os.path.join(OUT, "lfw_results.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    print("## lfw_dev (tuning set)\n")
    print(lfw_table(rows))
    if args.utk:
        uv, ug = F.utk_groups(load_cache(paths["utk_cache"]), paths["utk_labels"])
        urows = [utk_row(c, lfw, raw, uv, ug) for c in CANDIDATES]
        with open(os.path.join(OUT, "utk_results.json"), "w") as fh:
            json.dump(urows, fh, indent=1)
        print("\n## utkface_dev adults, race/gender (measurement only)")
        print(utk_table(urows))
    if args.artefact:
        norm, _, _ = build({"method": "snorm", "k": 100}, lfw, raw)
        assert norm is not None
        size = norm.save(os.path.join(OUT, f"{MODEL}-cohort.npz"))
        print(f"\nartefact: {size / 1e6:.2f} MB (float16 cohort of {len(norm.cohort)}, k={norm.k}, table inside)")


if __name__ == "__main__":
    main()
