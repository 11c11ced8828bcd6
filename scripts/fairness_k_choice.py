"""How K (neighbours) of the shipped cohort S-norm was chosen, on lfw_dev only (docs/fairness.md).

lfw_dev has no demographic labels, so the fairness proxy is label-free: the
descriptors are split into 8 k-means clusters (seeded), which differ in size
and compactness the way demographic groups do; the proxy is the impostor FMR
among pairs inside each cluster at the 1:1 default (FMR 1e-4) and at 1e-3,
with lfw_dev as one collection (its own cohort, run-time rule). Cost: TAR at
FMR 1e-4 on the pairs.tsv pairs, the pair list's images being the collection.

Usage: OMP_NUM_THREADS=2 .venv/bin/python scripts/fairness_k_choice.py  (about a minute)
"""

from __future__ import annotations

import numpy as np

from faceledger.engine.calibration import compare_threshold, load_table, similarity_from_fmr
from faceledger.engine.normalization import (
    CohortNormalizer,
    CohortStats,
    build_normalised_table,
    snorm_distance,
)
from faceledger.engine.scoring import sample_rows
from faceledger.evaluation import fairness as F
from faceledger.evaluation.embedding import load_cache
from faceledger.evaluation.pairs import read_pairs

MODEL = "dlib-resnet128-5pt-mirror-1"
CLUSTERS = 8


def kmeans(x: np.ndarray, n: int, seed: int = 0, rounds: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), n, replace=False)].astype(np.float64)
    for _ in range(rounds):
        assign = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.array([x[assign == j].mean(0) for j in range(n)])
    return assign


def stats_for(x: np.ndarray, members: np.ndarray, k: int) -> CohortStats:
    """Run-time rule: cohort = sample of the collection ``members``, each face left out of its own neighbourhood."""
    rows = members[sample_rows(len(members))]
    norm = CohortNormalizer(cohort=x[rows], k=k, method="snorm", cohort_labels=rows)
    return norm.stats(x[members], exclude=members)


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """lfw_dev's cached descriptors in file order, their identities, their clusters, and the pairs.tsv pairs
    as (row a, row b, same) arrays. Shared by the fairness scripts."""
    paths = F.default_paths(".")
    lfw = F.load_lfw(load_cache(paths["lfw_cache"]))
    order = np.argsort(np.array(lfw.rel), kind="stable")
    x, labels, rel = lfw.vectors[order], lfw.labels[order], np.array(lfw.rel)[order]
    where = {r: i for i, r in enumerate(rel)}
    pairs = read_pairs(paths["pairs"])
    ia = np.array([where[a] for a, _, _ in pairs])
    ib = np.array([where[b] for _, b, _ in pairs])
    same = np.array([s for *_, s in pairs], bool)
    return x, labels, kmeans(x, CLUSTERS), ia, ib, same


def main() -> None:
    x, labels, cluster, ia, ib, same = load()
    raw = load_table(MODEL)
    print("cluster sizes", np.bincount(cluster).tolist())
    d_pairs = np.linalg.norm(x[ia] - x[ib], axis=1)
    everyone = np.arange(len(x))
    s4, s3 = compare_threshold(1e-4), compare_threshold(1e-3)
    for k in (0, 25, 50, 100, 200, 300, 500):
        if k:
            st = stats_for(x, everyone, k)
            norm = CohortNormalizer(cohort=x[sample_rows(len(x))], k=k, method="snorm")
            table = build_normalised_table(norm, x, labels, MODEL, stats=st)
            in_pairs = np.unique(np.concatenate([ia, ib]))
            sp = stats_for(x, in_pairs, k)
            pos = {int(g): i for i, g in enumerate(in_pairs)}
            a = sp.take(np.array([pos[int(i)] for i in ia]))
            b = sp.take(np.array([pos[int(i)] for i in ib]))
            fmr = np.maximum(raw.fmr(d_pairs), table.fmr(snorm_distance(d_pairs, a, b)))
        else:
            fmr = raw.fmr(d_pairs)
        tar = float(np.mean(similarity_from_fmr(fmr)[same] >= s4))
        rates = []
        for j in range(CLUSTERS):
            m = np.nonzero(cluster == j)[0]
            xm = x[m].astype(np.float64)
            sq = (xm * xm).sum(1)
            d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * xm @ xm.T, 0))
            iu = np.triu_indices(len(m), 1)
            imp = labels[m][iu[0]] != labels[m][iu[1]]
            f = raw.fmr(d)
            if k:
                s = st.take(m)
                u = snorm_distance(d, CohortStats(s.mu[:, None], s.sigma[:, None]), CohortStats(s.mu[None], s.sigma[None]))
                f = np.maximum(f, table.fmr(u))
            sim = similarity_from_fmr(f[iu][imp])
            rates.append((float(np.mean(sim >= s4)), float(np.mean(sim >= s3))))
        r4 = " ".join(f"{r[0]:.1e}" for r in rates)
        print(f"k={k or 'raw'}: TAR@1e-4 {tar:.4f}; cluster FMR @1e-4 max {max(r[0] for r in rates):.1e} [{r4}]; "
              f"@1e-3 max {max(r[1] for r in rates):.1e}")


if __name__ == "__main__":
    main()
