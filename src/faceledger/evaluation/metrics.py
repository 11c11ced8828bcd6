"""Verification and identification metrics over distances (lower = more alike).

Pure functions on arrays: no models, no files. Distances of pairs where a face
was not found are +inf, so they count as non-matches, as they would in use.
"""

from __future__ import annotations

import numpy as np


def accuracy_at(d: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((d <= threshold) == same.astype(bool)))


def best_threshold(d: np.ndarray, same: np.ndarray) -> float:
    finite = np.unique(d[np.isfinite(d)])
    if len(finite) == 0:
        return 0.0
    cands = np.concatenate([finite, [finite[-1] + 1e-6]])
    accs = [accuracy_at(d, same, t) for t in cands]
    return float(cands[int(np.argmax(accs))])


def tenfold_accuracy(d: np.ndarray, same: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """Mean and std of accuracy with the threshold chosen on the other nine folds.

    Folds are contiguous slices of the pair list, as LFW's View 2 protocol and
    the peer benchmark split them.
    """
    parts = np.array_split(np.arange(len(d)), folds)
    accs = []
    for k in range(folds):
        test = parts[k]
        train = np.setdiff1d(np.arange(len(d)), test)
        t = best_threshold(d[train], same[train])
        accs.append(accuracy_at(d[test], same[test], t))
    return float(np.mean(accs)), float(np.std(accs))


def equal_error_rate(d: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(EER, threshold) where the false match and false non-match rates cross."""
    same = same.astype(bool)
    ts = np.unique(d[np.isfinite(d)])
    if len(ts) == 0 or same.all() or (~same).all():
        return float("nan"), float("nan")
    fmr = np.array([np.mean(d[~same] <= t) for t in ts])
    fnmr = np.array([np.mean(d[same] > t) for t in ts])
    i = int(np.argmin(np.abs(fmr - fnmr)))
    return float((fmr[i] + fnmr[i]) / 2), float(ts[i])


def tar_at_threshold(d: np.ndarray, same: np.ndarray, threshold: float) -> float:
    g = d[same.astype(bool)]
    return float(np.mean(g <= threshold)) if len(g) else float("nan")


def roc_points(d: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FMR, FNMR) over every distinct threshold, for ROC and DET plots."""
    same = same.astype(bool)
    ts = np.unique(d[np.isfinite(d)])
    fmr = np.array([np.mean(d[~same] <= t) for t in ts])
    fnmr = np.array([np.mean(d[same] > t) for t in ts])
    return fmr, fnmr


def open_set(
    mated_top: np.ndarray, mated_hit: np.ndarray, nonmated_top: np.ndarray, fpirs: tuple[float, ...] = (0.01, 0.001)
) -> dict:
    """Open-set identification figures.

    mated_top: distance of each mated probe's nearest gallery entry;
    mated_hit: whether that nearest entry is the probe's own identity;
    nonmated_top: distance of each non-mated probe's nearest gallery entry.
    FNIR at FPIR f: the threshold lets a share f of non-mated probes through;
    a mated probe then fails unless its rank-1 entry is its mate within it.
    """
    out: dict = {"rank1_hit_rate": float(np.mean(mated_hit)) if len(mated_hit) else float("nan")}
    srt = np.sort(nonmated_top)
    for f in fpirs:
        k = int(np.floor(f * len(srt)))
        t = float(srt[k - 1]) if k >= 1 else float(srt[0]) - 1e-9 if len(srt) else 0.0
        fnir = float(np.mean(~(mated_hit & (mated_top <= t)))) if len(mated_top) else float("nan")
        out[f"fnir_at_fpir_{f:g}"] = fnir
        out[f"threshold_at_fpir_{f:g}"] = t
    return out
