"""False match and false non-match rates per labelled subgroup, at the deployed thresholds.

Works on any folder of images with a labels CSV: a path column, optional
identity column (without one, every two images are different people, so only
FMR is measured), and the group columns to split by. FMR for a group counts
impostor pairs whose two images are both in the group (as NIST FRVT's
demographic differentials do). Intervals are Clopper-Pearson 95%.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict

import numpy as np

from ..engine.distance import pair_distances
from ..engine.normalization import CohortStats
from ..engine.scoring import Scorer
from ..errors import InvalidParameterError
from .deployed import outer, pair_similarity


def read_labels(path: str, group_by: list[str], *, path_column: str = "path", identity_column: str | None = None,
                min_age: float | None = None, age_column: str = "age") -> list[dict]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read labels {path}: {exc.strerror}.") from exc
    if not rows:
        raise InvalidParameterError(f"{path} has no rows.")
    missing = [c for c in [path_column, *group_by] + ([identity_column] if identity_column else [])
               if c not in rows[0]]
    if missing:
        raise InvalidParameterError(f"{path} has no column(s) {', '.join(missing)}; it has {', '.join(rows[0])}.")
    out = []
    for r in rows:
        if any(not r[c] for c in group_by):
            continue  # unlabelled rows cannot be grouped
        if min_age is not None:
            try:
                if float(r[age_column]) < min_age:
                    continue
            except (KeyError, ValueError):
                continue
        out.append({"path": r[path_column], "group": "/".join(r[c] for c in group_by),
                    "identity": r[identity_column] if identity_column else r[path_column]})
    return out


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial interval, by bisection on the regularised incomplete beta (no SciPy)."""
    if n == 0:
        return (0.0, 1.0)

    def cdf(p: float, kk: int) -> float:  # P(X <= kk) for Binomial(n, p), in log space for stability
        if p <= 0:
            return 1.0
        if p >= 1:
            return 0.0 if kk < n else 1.0
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p)
                + (n - i) * math.log1p(-p) for i in range(0, kk + 1)]
        m = max(logs)
        return min(1.0, math.exp(m) * sum(math.exp(v - m) for v in logs))

    def solve(f, target: float) -> float:  # type: ignore[no-untyped-def]
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if f(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(lambda p: cdf(p, k - 1), 1 - alpha / 2)
    upper = 1.0 if k == n else solve(lambda p: cdf(p, k), alpha / 2)
    return lower, upper


def same_photographs(paths: list[str], min_correlation: float = 0.98, size: int = 64) -> np.ndarray:
    """(n, n) bool: pairs whose images are the same photograph (pixel correlation of grey thumbnails).

    Model-independent on purpose: a data set without identity labels still
    must not count one photograph filed twice as two different people. A
    re-crop or mirror of the same photograph can fall below the bar.
    """
    from PIL import Image

    pix = np.empty((len(paths), size * size))
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            pix[i] = np.asarray(im.convert("L").resize((size, size)), dtype=np.float64).ravel()
    pix -= pix.mean(1, keepdims=True)
    pix /= np.maximum(np.linalg.norm(pix, axis=1, keepdims=True), 1e-9)
    same = pix @ pix.T >= min_correlation
    np.fill_diagonal(same, False)
    return same


def group_rates(vectors: np.ndarray, groups: list[str], identities: list[str], thresholds: dict[str, float],
                scorer: Scorer, stats: CohortStats | None = None, same_photo: np.ndarray | None = None) -> dict:
    """Per group and threshold (a Similarity): impostor pairs, false matches, FMR with CI; FNMR if identities.

    Pairs are scored as the service scores them (``scorer``; with ``stats``,
    the cohort neighbourhoods). ``same_photo`` pairs are left out and counted.
    """
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_group[g].append(i)
    ids = np.array(identities)
    out: dict = {}
    for g, idx in sorted(by_group.items()):
        x = vectors[idx].astype(np.float64)
        if scorer.metric == "cosine":
            d = pair_distances(x, x, "cosine")
        else:  # the built-in pack's arithmetic, unchanged
            sq = (x * x).sum(1)
            d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0))
        rows = np.array(idx)
        sim = pair_similarity(scorer, d, None if stats is None else outer(stats, rows, 0),
                              None if stats is None else outer(stats, rows, 1))
        iu = np.triu_indices(len(idx), 1)
        keep = np.ones(len(iu[0]), bool)
        if same_photo is not None:
            keep = ~same_photo[np.ix_(idx, idx)][iu]
        score = np.asarray(sim)[iu][keep]
        same = (ids[idx][iu[0]] == ids[idx][iu[1]])[keep]
        imp, gen = score[~same], score[same]
        entry: dict = {"images": len(idx), "impostor_pairs": int(len(imp)), "genuine_pairs": int(len(gen)),
                       "same_photograph_pairs_excluded": int(np.sum(~keep))}
        for name, t in thresholds.items():
            k = int(np.sum(imp >= t))
            lo, hi = clopper_pearson(k, len(imp))
            entry[name] = {"false_matches": k, "fmr": k / max(len(imp), 1), "fmr_ci95": [lo, hi]}
            if len(gen):
                entry[name]["fnmr"] = float(np.mean(gen < t))
        out[g] = entry
    return out


def ratios(rates: dict, thresholds: dict[str, float], min_pairs: int = 1000) -> dict:
    """Worst/best FMR ratio per threshold over groups with at least ``min_pairs`` impostor pairs."""
    out = {}
    for name in thresholds:
        fmrs = {g: e[name]["fmr"] for g, e in rates.items() if e["impostor_pairs"] >= min_pairs}
        if not fmrs:
            continue
        worst = max(fmrs, key=lambda g: fmrs[g])
        best = min(fmrs, key=lambda g: fmrs[g])
        ratio = fmrs[worst] / fmrs[best] if fmrs[best] > 0 else (math.inf if fmrs[worst] > 0 else 1.0)
        # the smallest worst/best ratio the 95% intervals allow: worst group's lower bound over best's upper
        lo = rates[worst][name]["fmr_ci95"][0] / max(rates[best][name]["fmr_ci95"][1], 1e-300)
        out[name] = {"worst_group": worst, "worst_fmr": fmrs[worst], "best_group": best, "best_fmr": fmrs[best],
                     "worst_best_ratio": ratio, "worst_best_ratio_lower_bound": lo,
                     "groups_without_false_match": sorted(g for g, f in fmrs.items() if f == 0)}
    return out
