"""Why rare groups keep the raw threshold: a label-free simulation on lfw_dev (docs/fairness.md).

The 8 k-means clusters of scripts/fairness_k_choice.py stand in for groups.
For each cluster, FMR among its impostor pairs at the 1:1 default (FMR 1e-4)
is measured twice: with the whole of lfw_dev as the collection (the cohort),
and with that cluster cut down to 60 random faces in the collection (a rare
group). Also tried: adding a small-K neighbourhood (skipping the nearest few,
which may be the person's own other photos) as a further never-looser term.

Usage: OMP_NUM_THREADS=2 .venv/bin/python scripts/fairness_rare_groups.py  (a few minutes)
"""

from __future__ import annotations

import numpy as np
from fairness_k_choice import (  # scripts/ is on sys.path when run as a script
    CLUSTERS,
    MODEL,
    load,
)

from faceledger.engine.calibration import compare_threshold, load_table, similarity_from_fmr
from faceledger.engine.normalization import (
    SIGMA_FLOOR,
    CohortNormalizer,
    CohortStats,
    _sq_dist,
    build_normalised_table,
    snorm_distance,
)
from faceledger.engine.scoring import sample_rows

CONFIGS = {"raw": [], "K=200 (shipped)": [(200, 0)], "+ K=20 skipping 5": [(200, 0), (20, 5)],
           "+ K=10 skipping 3": [(200, 0), (10, 3)], "+ K=5 skipping 2": [(200, 0), (5, 2)]}
RARE = 60


def main() -> None:
    x, labels, cluster, ia, ib, same = load()
    raw = load_table(MODEL)

    def stats(members: np.ndarray, cohort_rows: np.ndarray, k: int, skip: int) -> CohortStats:
        d = np.sqrt(_sq_dist(x[members], x[cohort_rows]))
        d[members[:, None] == cohort_rows[None, :]] = np.inf
        top = np.sort(np.partition(d, skip + k - 1, axis=1)[:, : skip + k], axis=1)[:, skip:]
        return CohortStats(top.mean(1), np.maximum(top.std(1), SIGMA_FLOOR))

    tables = {}
    for cfg in CONFIGS.values():
        for k, skip in cfg:
            if (k, skip) not in tables:
                everyone = np.arange(len(x))
                rows = sample_rows(len(x))
                norm = CohortNormalizer(cohort=x[rows], k=k, method="snorm")
                tables[(k, skip)] = build_normalised_table(norm, x, labels, MODEL,
                                                           stats=stats(everyone, rows, k, skip))

    def fmr(members: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray, cfg: str) -> np.ndarray:
        out = raw.fmr(d)
        rows = members[sample_rows(len(members))]
        pos = {int(g): n for n, g in enumerate(members)}
        for k, skip in CONFIGS[cfg]:
            st = stats(members, rows, k, skip)
            a = st.take(np.array([pos[int(v)] for v in i], int))
            b = st.take(np.array([pos[int(v)] for v in j], int))
            out = np.maximum(out, tables[(k, skip)].fmr(snorm_distance(d, a, b)))
        return out

    s4 = compare_threshold(1e-4)
    for cfg in CONFIGS:
        in_pairs = np.unique(np.concatenate([ia, ib]))
        tar = float(np.mean(similarity_from_fmr(fmr(in_pairs, ia, ib, np.linalg.norm(x[ia] - x[ib], axis=1), cfg))[same]
                            >= s4))
        rng = np.random.default_rng(5)
        full, rare = [], []
        for c in range(CLUSTERS):
            m = np.nonzero(cluster == c)[0]
            for kind, out in (("full", full), ("rare", rare)):
                mm = m if kind == "full" else np.sort(rng.choice(m, min(RARE, len(m)), replace=False))
                members = np.arange(len(x)) if kind == "full" else np.sort(np.concatenate([np.nonzero(cluster != c)[0],
                                                                                            mm]))
                iu = np.triu_indices(len(mm), 1)
                i, j = mm[iu[0]], mm[iu[1]]
                imp = labels[i] != labels[j]
                i, j = i[imp], j[imp]
                f = fmr(members, i, j, np.linalg.norm(x[i] - x[j], axis=1), cfg) if len(i) else np.zeros(0)
                out.append(float(np.mean(similarity_from_fmr(f) >= s4)) if len(f) else float("nan"))
        print(f"{cfg:20s} TAR@1e-4 {tar:.4f} | cluster FMR, whole cluster: max {np.nanmax(full):.1e} | "
              f"cluster cut to {RARE}: max {np.nanmax(rare):.1e} [{' '.join(f'{v:.1e}' for v in rare)}]")


if __name__ == "__main__":
    main()
