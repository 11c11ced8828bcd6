"""Open-set identification over identity folders (``root/<identity>/<image>``).

Each identity with two or more images enrols its first image (sorted by
name) and probes with the rest (mated probes); identities with one image are
non-mated probes. The gallery's 1:N default threshold follows the service's
rule: the lowest Similarity at which N x FMR stays at or below 0.001.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from ..engine.calibration import CalibrationTable, search_threshold
from ..engine.distance import pair_distances
from ..engine.scoring import Scorer
from . import metrics
from .deployed import collection_cohort, collection_stats, outer, pair_similarity


def split_gallery(paths: list[str], root: str, strangers: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(gallery, mated probes, non-mated probes).

    With ``strangers`` = N, only N single-image identities (every k-th, so the
    choice is spread over the alphabet) are kept out as non-mated probes; the
    other single-image identities are enrolled as distractors, making the
    gallery as large as the data allows (the shape of the ACLU's test).
    """
    by_id: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        by_id[os.path.relpath(p, root).split(os.sep)[0]].append(p)
    gallery, mated, singles = [], [], []
    for ident in sorted(by_id):
        imgs = sorted(by_id[ident])
        if len(imgs) >= 2:
            gallery.append(imgs[0])
            mated.extend(imgs[1:])
        else:
            singles.append(imgs[0])
    if strangers is None or strangers >= len(singles):
        return gallery, mated, singles
    step = len(singles) / max(strangers, 1)
    chosen = {int(i * step) for i in range(strangers)}
    nonmated = [p for i, p in enumerate(singles) if i in chosen]
    gallery += [p for i, p in enumerate(singles) if i not in chosen]
    return gallery, mated, nonmated


def nearest(gallery: np.ndarray, probes: np.ndarray, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """Index and distance (in ``metric``) of each probe's nearest gallery vector."""
    if len(probes) == 0 or len(gallery) == 0:
        return np.zeros(0, int), np.zeros(0)
    if metric == "cosine":
        d = pair_distances(probes, gallery, "cosine")
        idx = np.argmin(d, axis=1)
        return idx, d[np.arange(len(probes)), idx]
    g = gallery.astype(np.float64)
    q = probes.astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T
    idx = np.argmin(d2, axis=1)
    return idx, np.sqrt(np.maximum(d2[np.arange(len(q)), idx], 0))


def evaluate_identification(
    root: str, vectors: dict[str, np.ndarray | None], table: CalibrationTable,
    max_expected_false: float = 0.001, strangers: int | None = None, scorer: Scorer | None = None,
) -> dict:
    """Rank-based figures on raw distances; the figures "at default" as ``scorer`` scores (raw without one).

    With cohort normalisation on, the gallery is the collection and its own
    cohort, as the service would hold it; candidates are ranked by Similarity.
    """
    paths = [os.path.join(root, k) for k in vectors]
    gallery, mated, nonmated = split_gallery(paths, root, strangers)

    def rel(p: str) -> str:
        return os.path.relpath(p, root)

    gal = [(rel(p), vectors[rel(p)]) for p in gallery if vectors.get(rel(p)) is not None]
    gal_ids = [k.split(os.sep)[0] for k, _ in gal]
    dim = next((len(v) for v in vectors.values() if v is not None), 128)
    gmat = np.array([v for _, v in gal]) if gal else np.zeros((0, dim))
    enrolled = set(gal_ids)

    def probe_set(ps: list[str]) -> tuple[list[str], np.ndarray]:
        keep = [rel(p) for p in ps if vectors.get(rel(p)) is not None]
        return keep, np.array([vectors[k] for k in keep]) if keep else np.zeros((0, dim))

    mk, mvec = probe_set([p for p in mated if rel(p).split(os.sep)[0] in enrolled])
    nk, nvec = probe_set(nonmated)
    midx, mdist = nearest(gmat, mvec, table.metric)
    nidx, ndist = nearest(gmat, nvec, table.metric)
    mhit = np.array([gal_ids[i] == k.split(os.sep)[0] for i, k in zip(midx, mk, strict=True)], bool)
    out = metrics.open_set(mdist, mhit, ndist)
    s_default = search_threshold(len(gal), max_expected_false)
    t_default = table.distance_for_similarity(s_default)
    m_ok, n_ok, m_right = mdist <= t_default, ndist <= t_default, mhit
    if scorer is not None and len(gal):
        m_sim, m_right, n_sim, out["score_normalization"] = _deployed_top(scorer, gmat, gal_ids, mvec, mk, nvec)
        m_ok, n_ok = m_sim >= s_default - 1e-9, n_sim >= s_default - 1e-9
    out.update(
        gallery_size=len(gal),
        mated_probes=len(mk),
        nonmated_probes=len(nk),
        probes_without_face=sum(1 for p in mated + nonmated if vectors.get(rel(p)) is None),
        default_similarity_threshold=round(s_default, 3),
        default_distance_threshold=round(t_default, 4),
        nonmated_with_candidate_at_default=int(np.sum(n_ok)),
        mated_hit_rate_at_default=round(float(np.mean(m_right & m_ok)), 4) if len(mk) else None,
        # the face_recognition library's default tolerance, on raw distances
        nonmated_with_candidate_at_distance_0_6=int(np.sum(ndist <= 0.6)),
        mated_hit_rate_at_distance_0_6=round(float(np.mean(mhit & (mdist <= 0.6))), 4) if len(mk) else None,
    )
    return out


def _deployed_top(scorer: Scorer, gmat: np.ndarray, gal_ids: list[str], mvec: np.ndarray, mk: list[str],
                  nvec: np.ndarray, block: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Top candidate's Similarity per probe (mated: and whether it is the right person), as the service ranks."""
    stats = collection_stats(scorer, gmat) if scorer.enabled else None
    cohort = collection_cohort(gmat)

    def top(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best_sim, best_idx = np.zeros(len(probes)), np.zeros(len(probes), int)
        for start in range(0, len(probes), block):
            q = probes[start:start + block].astype(np.float64)
            g = gmat.astype(np.float64)
            if scorer.metric == "cosine":
                d = pair_distances(q, g, "cosine")
            else:  # the built-in pack's arithmetic, unchanged
                d = np.sqrt(np.maximum((q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T, 0))
            a = None if stats is None else outer(cohort.stats(q), axis=0)
            sim = pair_similarity(scorer, d, a, None if stats is None else outer(stats, axis=1))
            # rank by Similarity, ties (e.g. all at 100) by distance, as search_vector does
            order = np.argmax(sim - 1e-6 * d, axis=1)
            best_idx[start:start + block] = order
            best_sim[start:start + block] = sim[np.arange(len(q)), order]
        return best_sim, best_idx

    m_sim, m_idx = top(mvec) if len(mvec) else (np.zeros(0), np.zeros(0, int))
    n_sim, _ = top(nvec) if len(nvec) else (np.zeros(0), np.zeros(0, int))
    m_hit = np.array([gal_ids[i] == k.split(os.sep)[0] for i, k in zip(m_idx, mk, strict=True)], bool)
    used = scorer.version if stats is not None else ("off" if not scorer.enabled else "inactive")
    return m_sim, m_hit, n_sim, used
