"""Fairness experiments for cohort score normalisation (see docs/fairness.md).

Everything that is *tuned* here uses lfw_dev only (cohort, k, calibration);
utkface_dev is only *measured* (:func:`utk_group_rates`), with thresholds that
come from the lfw_dev calibration. Inputs are the descriptor caches written by
``evaluation.embedding.save_cache`` (use the ``mirror`` descriptors).

A "scorer" is either ``None`` (raw distance with the shipped calibration
table) or a :class:`~faceledger.engine.normalization.CohortNormalizer` with a
table built on lfw_dev by :func:`calibrate_on_lfw`.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..engine.calibration import CalibrationTable, compare_threshold, search_threshold
from ..engine.normalization import CohortNormalizer, CohortStats, build_normalised_table
from . import metrics
from .identify import split_gallery
from .subgroups import clopper_pearson, ratios

GALLERY = 1000  # the 1:N operating point quoted in the issue: FMR 1e-6 per pair


@dataclass
class Lfw:
    rel: list[str]
    vectors: np.ndarray  # (n, 128) float32, mirror descriptors with a face
    labels: np.ndarray  # identity per row
    index: dict[str, int]


def load_lfw(cache: dict[str, np.ndarray]) -> Lfw:
    keep = np.nonzero(cache["ok"])[0]
    rel = [str(cache["rel"][i]) for i in keep]
    labels = np.array([r.split("/")[0] for r in rel])
    return Lfw(rel, cache["mirror"][keep].astype(np.float32), labels, {r: i for i, r in enumerate(rel)})


def cohort_rows(lfw: Lfw, size: int | None = None) -> np.ndarray:
    """One image per identity (its first, by name); ``size`` spreads the choice evenly over the sorted identities."""
    first: dict[str, int] = {}
    for i in np.argsort(np.array(lfw.rel), kind="stable"):
        first.setdefault(str(lfw.labels[i]), int(i))
    rows = np.array([first[k] for k in sorted(first)])
    if size is not None and size < len(rows):
        rows = rows[np.floor(np.arange(size) * len(rows) / size).astype(int)]
    return rows


def make_normalizer(lfw: Lfw, *, k: int, method: str, size: int | None = None,
                    dtype: type = np.float32, all_images: bool = False) -> CohortNormalizer:
    """``all_images``: every lfw_dev image is in the cohort (lfw_dev as a collection normalised against itself)."""
    rows = np.arange(len(lfw.vectors)) if all_images else cohort_rows(lfw, size)
    return CohortNormalizer(cohort=lfw.vectors[rows].astype(dtype).astype(np.float32), k=k, method=method,
                            cohort_labels=lfw.labels[rows],
                            meta={"data": "lfw_dev", "cohort_size": int(len(rows)), "k": k, "method": method,
                                  "cohort_rule": "first image (by name) of evenly spaced identities"})


def calibrate_on_lfw(norm: CohortNormalizer, lfw: Lfw, model_version: str) -> CohortStats:
    """Build ``norm.table`` on every lfw_dev pair (leave-identity-out neighbourhoods); returns lfw stats."""
    stats = norm.stats(lfw.vectors, exclude=lfw.labels)
    norm.table = build_normalised_table(norm, lfw.vectors, lfw.labels, model_version, stats=stats,
                                        meta={**norm.meta, "table_version": 1})
    return stats


def operating_points(table: CalibrationTable) -> dict[str, float]:
    """Thresholds on the table's axis for the deployed rules: 1:1 at FMR 1e-4, 1:N at 0.001 / gallery."""
    return {"compare_1to1": table.distance_for_similarity(compare_threshold(1e-4)),
            f"search_1toN_gallery_{GALLERY}": table.distance_for_similarity(search_threshold(GALLERY))}


def _pair_u(norm: CohortNormalizer | None, x: np.ndarray, y: np.ndarray,
            sx: CohortStats | None, sy: CohortStats | None) -> np.ndarray:
    d = np.linalg.norm(x.astype(np.float64) - y.astype(np.float64), axis=1)
    if norm is None:
        return d
    assert sx is not None and sy is not None
    return norm.normalised_distance(d, sx, sy)


def lfw_pairs(norm: CohortNormalizer | None, table: CalibrationTable, lfw: Lfw, stats: CohortStats | None,
              pairs: list[tuple[str, str, int]], raw_table: CalibrationTable | None = None) -> dict:
    ia = np.array([lfw.index[a] for a, _, _ in pairs])
    ib = np.array([lfw.index[b] for _, b, _ in pairs])
    same = np.array([s for _, _, s in pairs], bool)
    u = _pair_u(norm, lfw.vectors[ia], lfw.vectors[ib],
                stats.take(ia) if stats else None, stats.take(ib) if stats else None)
    acc, std = metrics.tenfold_accuracy(u, same)
    out: dict = {"pairs": len(pairs), "accuracy_10fold": round(acc, 4), "accuracy_10fold_std": round(std, 4)}
    d = _pair_u(None, lfw.vectors[ia], lfw.vectors[ib], None, None)
    raw_ops = operating_points(raw_table) if raw_table is not None else None
    for name, t in operating_points(table).items():
        ok = u <= t
        if raw_ops is not None:
            ok &= d <= raw_ops[name]
        out[f"tar_{name}"] = round(float(np.mean(ok[same])), 4)
        out[f"fmr_pairs_{name}"] = float(np.mean(ok[~same]))
    return out


def lfw_open_set(norm: CohortNormalizer | None, table: CalibrationTable, lfw: Lfw,
                 stats: CohortStats | None, raw_table: CalibrationTable | None = None) -> dict:
    """Open-set identification as ``evaluation.identify`` splits lfw_dev, ranked and thresholded on u."""
    root = "/"
    paths = [root + r for r in lfw.rel]
    gallery, mated, nonmated = split_gallery(paths, root)
    g = np.array([lfw.index[p[1:]] for p in gallery])
    m = np.array([lfw.index[p[1:]] for p in mated])
    n = np.array([lfw.index[p[1:]] for p in nonmated])

    def top(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if norm is None:
            d = np.sqrt(np.maximum(_sq(lfw.vectors[probes], lfw.vectors[g]), 0))
        else:
            assert stats is not None
            d = norm.pairwise(lfw.vectors[probes], stats.take(probes), lfw.vectors[g], stats.take(g))
        j = np.argmin(d, axis=1)
        return g[j], d[np.arange(len(probes)), j]

    mj, mu = top(m)
    nj, nu = top(n)
    hit = lfw.labels[mj] == lfw.labels[m]
    t = table.distance_for_similarity(search_threshold(len(g)))
    out = metrics.open_set(mu, hit, nu)
    m_ok, n_ok = mu <= t, nu <= t
    if raw_table is not None:
        t_raw = raw_table.distance_for_similarity(search_threshold(len(g)))
        m_ok &= np.linalg.norm(lfw.vectors[m] - lfw.vectors[mj], axis=1) <= t_raw
        n_ok &= np.linalg.norm(lfw.vectors[n] - lfw.vectors[nj], axis=1) <= t_raw
    return {"gallery_size": int(len(g)), "mated_probes": int(len(m)), "nonmated_probes": int(len(n)),
            "rank1_hit_rate": round(out["rank1_hit_rate"], 4),
            "fnir_at_fpir_0.01": round(out["fnir_at_fpir_0.01"], 4),
            "mated_hit_rate_at_default": round(float(np.mean(hit & m_ok)), 4),
            "nonmated_with_candidate_at_default": int(np.sum(n_ok))}


def _sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T


def density_strata(norm: CohortNormalizer | None, table: CalibrationTable, lfw: Lfw, stats: CohortStats | None,
                   density: np.ndarray, strata: int = 5, block: int = 512) -> dict:
    """Label-free fairness proxy on lfw_dev: impostor FMR per local-density stratum (both faces in the stratum).

    ``density``: one number per lfw face (mean distance to its 20 nearest
    cohort strangers: smaller = denser). Returns FMR per stratum at the
    operating points and the worst/best ratio.
    """
    edges = np.quantile(density, np.linspace(0, 1, strata + 1)[1:-1])
    q = np.searchsorted(edges, density)
    ops = operating_points(table)
    extra = {"fmr_1e-5": table.distance_for_fmr(1e-5)}
    ops_all = {**ops, **extra}
    counts = {name: np.zeros(strata, np.int64) for name in ops_all}
    total = np.zeros(strata, np.int64)
    n = len(lfw.vectors)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        if norm is None:
            u = np.sqrt(np.maximum(_sq(lfw.vectors[rows], lfw.vectors), 0))
        else:
            assert stats is not None
            u = norm.pairwise(lfw.vectors[rows], stats.take(rows), lfw.vectors, stats)
        mask = (np.arange(n)[None, :] > rows[:, None]) & (lfw.labels[rows][:, None] != lfw.labels[None, :])
        mask &= q[rows][:, None] == q[None, :]
        qs = np.broadcast_to(q[rows][:, None], u.shape)[mask]
        uu = u[mask]
        total += np.bincount(qs, minlength=strata)
        for name, t in ops_all.items():
            counts[name] += np.bincount(qs[uu <= t], minlength=strata)
    out: dict = {"pairs_per_stratum": total.tolist()}
    for name in ops_all:
        f = counts[name] / np.maximum(total, 1)
        out[name] = {"fmr": [float(x) for x in f],
                     "worst_best_ratio": float(f.max() / f.min()) if f.min() > 0 else math.inf}
    return out


# -- UTK: measurement only ------------------------------------------------------
def utk_group_rates(norm: CohortNormalizer | None, table: CalibrationTable, vectors: np.ndarray,
                    groups: list[str], *, raw_table: CalibrationTable | None = None,
                    self_cohort: bool = False) -> dict:
    """Per group FMR (pairs with both faces in the group; every pair is an impostor pair) at the operating points.

    Same output shape as ``evaluation.subgroups.group_rates``; thresholds are
    on the table's axis (raw distance or normalised distance). ``raw_table``:
    a pair must also pass the raw-distance threshold of the same promised FMR
    (the "never looser than raw" rule). ``self_cohort``: ``norm``'s cohort is
    ``vectors`` themselves (a collection normalised against itself), each face
    left out of its own neighbourhood.
    """
    ops = operating_points(table)
    raw_ops = operating_points(raw_table) if raw_table is not None else None
    stats = None
    if norm is not None:
        stats = norm.stats(vectors, exclude=np.arange(len(vectors)) if self_cohort else None)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, grp in enumerate(groups):
        by_group[grp].append(i)
    out: dict = {}
    for grp, idx_list in sorted(by_group.items()):
        idx = np.array(idx_list)
        x = vectors[idx]
        d = np.sqrt(np.maximum(_sq(x, x), 0))
        iu = np.triu_indices(len(idx), 1)
        if norm is None:
            u = d
        else:
            assert stats is not None
            a, b = stats.take(idx), stats.take(idx)
            u = norm.normalised_distance(d, CohortStats(a.mu[:, None], a.sigma[:, None]),
                                         CohortStats(b.mu[None, :], b.sigma[None, :]))
        imp, raw = u[iu], d[iu]
        entry: dict = {"images": len(idx), "impostor_pairs": int(len(imp)), "genuine_pairs": 0}
        for name, t in ops.items():
            hit = imp <= t
            if raw_ops is not None:
                hit &= raw <= raw_ops[name]
            k = int(np.sum(hit))
            lo, hi = clopper_pearson(k, len(imp))
            entry[name] = {"false_matches": k, "fmr": k / max(len(imp), 1), "fmr_ci95": [lo, hi]}
        out[grp] = entry
    return {"thresholds": {k: {"value": round(v, 5), "promised_fmr": float(table.fmr(v))} for k, v in ops.items()},
            "groups": out, "ratios": ratios(out, ops)}


def utk_groups(cache: dict[str, np.ndarray], labels_csv: str, min_age: float = 18) -> tuple[np.ndarray, list[str]]:
    import csv

    with open(labels_csv, newline="") as fh:
        lab = {r["path"]: r for r in csv.DictReader(fh)}
    vecs, groups = [], []
    for rel, ok, v in zip(cache["rel"], cache["ok"], cache["mirror"], strict=True):
        r = lab.get(str(rel))
        if not ok or r is None or not r["race"] or not r["gender"] or float(r["age"]) < min_age:
            continue
        vecs.append(v)
        groups.append(f"{r['race']}/{r['gender']}")
    return np.array(vecs, np.float32), groups


def default_paths(repo: str) -> dict[str, str]:
    shared = os.path.join(os.path.dirname(os.path.abspath(repo)), "shared", "data")
    return {"lfw_cache": os.path.join(repo, ".cache", "lfw_dev.npz"),
            "utk_cache": os.path.join(repo, ".cache", "utk.npz"),
            "pairs": os.path.join(shared, "lfw_dev", "pairs.tsv"),
            "utk_labels": os.path.join(shared, "utkface_dev", "labels.csv")}
