"""Pair-list verification: 10-fold accuracy, TAR at calibrated FMRs, EER, detection failures.

The pair list is a TSV with a header and columns image_a, image_b, same
(1 or 0), paths relative to ``root`` (the pairs.tsv format of lfw_dev).
"""

from __future__ import annotations

import os

import numpy as np

from ..engine.calibration import CalibrationTable, similarity_from_fmr
from ..engine.distance import pair_distances as metric_distances
from ..engine.scoring import Scorer
from ..errors import InvalidParameterError
from . import metrics
from .deployed import collection_stats, pair_similarity


def read_pairs(path: str) -> list[tuple[str, str, int]]:
    try:
        with open(path) as fh:
            lines = [ln.rstrip("\n").split("\t") for ln in fh if ln.strip()]
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read the pair list {path}: {exc.strerror}.") from exc
    if lines and lines[0][:3] == ["image_a", "image_b", "same"]:
        lines = lines[1:]
    rows = []
    for n, cols in enumerate(lines, start=2):
        if len(cols) < 3 or cols[2] not in ("0", "1"):
            raise InvalidParameterError(f"{path}:{n}: expected image_a<TAB>image_b<TAB>0|1.")
        rows.append((cols[0], cols[1], int(cols[2])))
    if not rows:
        raise InvalidParameterError(f"{path} lists no pairs.")
    return rows


def pair_distances(
    rows: list[tuple[str, str, int]], vectors: dict[str, np.ndarray | None], metric: str = "euclidean",
) -> tuple[np.ndarray, np.ndarray, int]:
    d, same, missing = [], [], 0
    for a, b, s in rows:
        va, vb = vectors.get(a), vectors.get(b)
        if va is None or vb is None:
            missing += 1
            d.append(np.inf)
        else:
            if metric == "cosine":
                d.append(float(metric_distances(va[None, :], vb[None, :], "cosine")[0, 0]))
            else:  # the built-in pack's arithmetic, unchanged
                d.append(float(np.linalg.norm(va.astype(np.float64) - vb.astype(np.float64))))
        same.append(s)
    return np.array(d), np.array(same, dtype=bool), missing


def evaluate_pairs(
    rows: list[tuple[str, str, int]], vectors: dict[str, np.ndarray | None], table: CalibrationTable | None,
    scorer: Scorer | None = None,
) -> dict:
    """Accuracy and EER on raw distances; TAR at FMR 1e-3/1e-4 as ``scorer`` scores (raw table without one).

    With cohort normalisation on, the images in ``vectors`` (those of the pair
    list) are one collection, its own cohort, as the service would hold them.
    """
    metric = table.metric if table is not None else (scorer.metric if scorer is not None else "euclidean")
    d, same, missing = pair_distances(rows, vectors, metric)
    acc, std = metrics.tenfold_accuracy(d, same)
    eer, eer_t = metrics.equal_error_rate(d, same)
    out: dict = {
        "pairs": len(rows),
        "same": int(same.sum()),
        "different": int((~same).sum()),
        "pairs_without_face": missing,
        "accuracy_10fold": round(acc, 4),
        "accuracy_10fold_std": round(std, 4),
        "eer": round(eer, 4),
        "eer_distance": round(eer_t, 4),
    }
    if table is not None:
        for f in (1e-3, 1e-4):
            t = table.distance_for_fmr(f)
            out[f"tar_at_fmr_{f:g}"] = round(metrics.tar_at_threshold(d, same, t), 4)
            out[f"distance_at_fmr_{f:g}"] = round(t, 4)
        out["fmr_of_distance_0.6"] = float(table.fmr(0.6))
        out["calibration"] = table.version
    if scorer is not None:
        sim = deployed_similarity(rows, vectors, scorer, d)
        out["score_normalization"] = sim[1]
        for f in (1e-3, 1e-4):
            out[f"tar_at_fmr_{f:g}"] = round(float(np.mean(sim[0][same] >= similarity_from_fmr(f) - 1e-9)), 4)
    return out


def deployed_similarity(rows: list[tuple[str, str, int]], vectors: dict[str, np.ndarray | None], scorer: Scorer,
                        d: np.ndarray) -> tuple[np.ndarray, str]:
    """Similarity of each pair (0 without a face) as the service scores it, and the scoring used."""
    keys = [k for k, v in vectors.items() if v is not None]
    where = {k: i for i, k in enumerate(keys)}
    stats = collection_stats(scorer, np.array([vectors[k] for k in keys])) if scorer.enabled and keys else None
    ok = np.isfinite(d)
    sim = np.zeros(len(rows))
    ia = np.array([where.get(a, 0) for a, _, _ in rows])
    ib = np.array([where.get(b, 0) for _, b, _ in rows])
    a = None if stats is None else stats.take(ia[ok])
    b = None if stats is None else stats.take(ib[ok])
    sim[ok] = pair_similarity(scorer, d[ok], a, b)
    used = scorer.version if stats is not None else ("off" if not scorer.enabled else "inactive")
    return sim, used


def plot_roc(rows: list[tuple[str, str, int]], vectors: dict[str, np.ndarray | None], out_png: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dev dependency
        raise InvalidParameterError("--plot needs matplotlib (pip install matplotlib).") from exc
    d, same, _ = pair_distances(rows, vectors)
    fmr, fnmr = metrics.roc_points(d, same)
    fig, (roc, det) = plt.subplots(1, 2, figsize=(10, 4.5))
    roc.plot(np.maximum(fmr, 1e-5), 1 - fnmr)
    roc.set_xscale("log")
    roc.set_xlabel("false match rate")
    roc.set_ylabel("true accept rate")
    roc.set_title("ROC")
    det.plot(np.maximum(fmr, 1e-5), np.maximum(fnmr, 1e-5))
    det.set_xscale("log")
    det.set_yscale("log")
    det.set_xlabel("false match rate")
    det.set_ylabel("false non-match rate")
    det.set_title("DET")
    for ax in (roc, det):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
