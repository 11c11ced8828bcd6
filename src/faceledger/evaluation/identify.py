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
from . import metrics


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


def nearest(gallery: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of each probe's nearest gallery vector."""
    if len(probes) == 0 or len(gallery) == 0:
        return np.zeros(0, int), np.zeros(0)
    g = gallery.astype(np.float64)
    q = probes.astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2 * q @ g.T
    idx = np.argmin(d2, axis=1)
    return idx, np.sqrt(np.maximum(d2[np.arange(len(q)), idx], 0))


def evaluate_identification(
    root: str, vectors: dict[str, np.ndarray | None], table: CalibrationTable,
    max_expected_false: float = 0.001, strangers: int | None = None,
) -> dict:
    paths = [os.path.join(root, k) for k in vectors]
    gallery, mated, nonmated = split_gallery(paths, root, strangers)

    def rel(p: str) -> str:
        return os.path.relpath(p, root)

    gal = [(rel(p), vectors[rel(p)]) for p in gallery if vectors.get(rel(p)) is not None]
    gal_ids = [k.split(os.sep)[0] for k, _ in gal]
    gmat = np.array([v for _, v in gal]) if gal else np.zeros((0, 128))
    enrolled = set(gal_ids)

    def probe_set(ps: list[str]) -> tuple[list[str], np.ndarray]:
        keep = [rel(p) for p in ps if vectors.get(rel(p)) is not None]
        return keep, np.array([vectors[k] for k in keep]) if keep else np.zeros((0, 128))

    mk, mvec = probe_set([p for p in mated if rel(p).split(os.sep)[0] in enrolled])
    nk, nvec = probe_set(nonmated)
    midx, mdist = nearest(gmat, mvec)
    nidx, ndist = nearest(gmat, nvec)
    mhit = np.array([gal_ids[i] == k.split(os.sep)[0] for i, k in zip(midx, mk, strict=True)], bool)
    out = metrics.open_set(mdist, mhit, ndist)
    s_default = search_threshold(len(gal), max_expected_false)
    t_default = table.distance_for_similarity(s_default)
    out.update(
        gallery_size=len(gal),
        mated_probes=len(mk),
        nonmated_probes=len(nk),
        probes_without_face=sum(1 for p in mated + nonmated if vectors.get(rel(p)) is None),
        default_similarity_threshold=round(s_default, 3),
        default_distance_threshold=round(t_default, 4),
        nonmated_with_candidate_at_default=int(np.sum(ndist <= t_default)),
        mated_hit_rate_at_default=round(float(np.mean(mhit & (mdist <= t_default))), 4) if len(mk) else None,
        nonmated_with_candidate_at_distance_0_6=int(np.sum(ndist <= 0.6)),
        mated_hit_rate_at_distance_0_6=round(float(np.mean(mhit & (mdist <= 0.6))), 4) if len(mk) else None,
    )
    return out
