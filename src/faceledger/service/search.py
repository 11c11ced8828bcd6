"""CompareFaces (1:1), SearchFaces and SearchFacesByImage (1:N).

Thresholds are calibrated: a requested threshold below the floor (the
Similarity of the policy's FMR for 1:1; for 1:N the lowest Similarity at which
gallery size x FMR stays under the ceiling) is raised to it, and both the
response (extra ``Faceledger`` member) and the ledger say so. Each match
carries its estimated false match rate.
"""

from __future__ import annotations

import numpy as np

from ..engine.calibration import FMR_FLOOR, CalibrationTable
from ..engine.quality import quality_score
from ..engine.registry import wire_version
from ..engine.report import face_detail
from ..engine.scoring import Cohort
from ..engine.types import Face
from ..errors import InvalidParameterError, PackUnavailableError, ResourceNotFoundError
from ..store.vectors import Matches
from .collections import check_collection_id
from .core import Call, Service, Threshold, match_report
from .faces import collection_pack, quality_reasons, stored_face
from .images import image_bytes, sha256
from .packs import Pack
from .policy import Purpose
from .scores import ALL, Scores, matrix, score
from .thumbnails import keep_probe

MAX_SEARCH_FACES = 4096
CAPPED = "capped"  # FMR below 1e-7: Similarity is 100, Distance orders the matches
EXTRAPOLATED = "extrapolated"  # FMR below the smallest measured: Similarity rests on the tail fit


def _compared_face(detail: dict) -> dict:
    keep = ("BoundingBox", "Confidence", "Landmarks", "Pose", "Quality")
    return {k: detail[k] for k in keep if k in detail}


def match_fields(table: CalibrationTable, scores: Scores, i: int) -> dict:
    """Similarity and its FMR, the raw distance, and where the calibration ran out for this match.

    Similarity is capped at 100 (FMR 1e-7) and rests on extrapolation below
    the smallest measured FMR; ``Calibration`` says which, and ``Distance``
    (lower is closer) keeps the order among capped matches.
    """
    fmr = float(scores.fmr[i])
    out: dict = {"Similarity": round(float(scores.similarity[i]), 4), "EstimatedFalseMatchRate": fmr,
                 "Distance": round(float(scores.distance[i]), 5)}
    if fmr < FMR_FLOOR:
        out["Calibration"] = CAPPED
    elif fmr < table.smallest_measured_fmr:
        out["Calibration"] = EXTRAPOLATED
    return out


def calibration_counts(matches: list[dict]) -> dict:
    """How many matches rest on extrapolation or are capped (the ``Faceledger`` member's spelling)."""
    capped = sum(1 for m in matches if m.get("Calibration") == CAPPED)
    extrapolated = sum(1 for m in matches if m.get("Calibration") == EXTRAPOLATED)
    return {"BeyondCalibration": capped, "Extrapolated": extrapolated + capped} if matches else {}


def pack_cohort(svc: Service, pack: Pack, cohort_of: str, members: list[str] | None = None) -> Cohort | None:
    """The cohort a pack's scores are normalised against: the operator's file, else the collection searched."""
    if not pack.scorer.enabled:
        return None
    return pack.cohort if pack.cohort is not None else svc.cohorts.get(cohort_of, members, pack.model_version)


def scoring_report(svc: Service, pack: Pack, cohort_of: str) -> dict:
    """How a call that scored nothing would have scored (``ScoreNormalization``, ``CohortSize``)."""
    return pack.scorer.report(pack_cohort(svc, pack, cohort_of))


def scoring_details(report: dict) -> dict:
    """The ledger's spelling of :func:`scoring_report` (and of :func:`search_report`'s "may miss mates")."""
    out = {"scoring": report["ScoreNormalization"], "cohort_size": report.get("CohortSize")}
    if "SearchExact" in report:
        out.update(exact=report["SearchExact"], recall_estimate=report.get("RecallEstimate"))
    return out


def search_report(report: dict, found: Matches) -> dict:
    """``report`` with ``SearchExact`` False and ``RecallEstimate`` when an approximate scan found ``found``.

    An exact search adds nothing: its response and ledger record stay as they were.
    """
    if found.exact:
        return report
    return {**report, "SearchExact": False, "RecallEstimate": found.recall_estimate}


def compare_faces(svc: Service, call: Call) -> dict:
    p = call.params
    rule = svc.matching_rule(call, None)
    threshold = svc.compare_threshold(p.get("SimilarityThreshold"), rule)
    quality_filter = p.get("QualityFilter") or "NONE"
    src_bytes = image_bytes(p.get("SourceImage"), svc.buckets, "SourceImage")
    tgt_bytes = image_bytes(p.get("TargetImage"), svc.buckets, "TargetImage")
    pack = call.pack = svc.packs.default  # one pack for both images
    src = pack.engines.analyze(src_bytes, max_faces=1)
    if not src.faces:
        svc.refuse(call, None, "no-face", InvalidParameterError("No face was found in SourceImage."))
    if quality_reasons(src.faces[0], quality_filter):
        svc.refuse(call, None, "quality", InvalidParameterError(
            f"The source face fails QualityFilter {quality_filter}: "
            + ", ".join(quality_reasons(src.faces[0], quality_filter))))
    tgt = pack.engines.analyze(tgt_bytes)
    if not tgt.faces:
        svc.refuse(call, None, "no-face", InvalidParameterError("No face was found in TargetImage."))
    source = src.faces[0]
    targets = [f for f in tgt.faces if not quality_reasons(f, quality_filter)]
    members = [c["collection_id"] for c in svc.catalog.list_collections(None, 1_000_000)
               if c["model_version"] == pack.model_version] if pack.scorer.enabled else None
    cohort = pack_cohort(svc, pack, ALL, members)
    scores = score(pack.scorer, cohort, np.asarray(source.descriptor),
                   matrix([f.descriptor for f in targets], pack.spec.dim))
    matches, unmatched = [], []
    for i, face in enumerate(targets):
        fields = match_fields(pack.calibration, scores, i)
        compared = _compared_face(face_detail(face))
        if fields["Similarity"] >= threshold.applied:
            matches.append({**fields, "Face": compared})
        else:
            unmatched.append(compared)
    matches.sort(key=lambda m: (-m["Similarity"], m["Distance"]))
    src_detail = face_detail(source)
    with svc.catalog.transaction() as tx:
        rec = svc.record(tx, call, None, {
            "source_sha256": sha256(src_bytes), "target_sha256": sha256(tgt_bytes),
            **_threshold_details(threshold), **scoring_details(scores.report),
            "matches": [m["Similarity"] for m in matches], "unmatched": len(unmatched),
        })
    return {
        "SourceImageFace": {"BoundingBox": src_detail["BoundingBox"], "Confidence": src_detail["Confidence"]},
        "FaceMatches": matches,
        "UnmatchedFaces": unmatched,
        "Faceledger": {**match_report(pack.calibration, threshold, scores.report, rec["seq"], rule),
                       **calibration_counts(matches)},
    }


def _threshold_details(t: Threshold) -> dict:
    return {"threshold_requested": t.requested, "threshold_applied": round(t.applied, 4),
            "threshold_floor": round(t.floor, 4), "threshold_raised": t.raised,
            "gallery_size": t.gallery_size}


def _max_faces(call: Call, rule: Purpose) -> int:
    """MaxFaces, capped by the purpose's longest candidate list."""
    k = int(call.params.get("MaxFaces") or MAX_SEARCH_FACES)
    if not 1 <= k <= MAX_SEARCH_FACES:
        raise InvalidParameterError("MaxFaces must be between 1 and 4096.")
    return min(k, rule.max_candidates)


def gate_probe(svc: Service, call: Call, cid: str, probe: Face, rule: Purpose) -> None:
    """Refuse a 1:N search whose probe is below the purpose's minimum quality, with the reason."""
    quality = quality_score(probe.quality)
    if quality < rule.min_probe_quality:
        why = ", ".join(probe.unindexable_reasons) or "low combined exposure and sharpness"
        svc.refuse(call, cid, "quality", InvalidParameterError(
            f"The probe face's quality {quality:.0f} is below the minimum {rule.min_probe_quality:.0f} for purpose "
            f"{rule.name!r} ({why}); low-quality probes produce unreliable candidates. Use a clearer image."))


def search_vector(svc: Service, pack: Pack, cid: str, vector: np.ndarray, threshold: Threshold, k: int,
                  exclude: str | None = None) -> tuple[list[dict], dict]:
    """The best ``k`` faces of ``cid`` at or above the threshold, best first, and how they were scored.

    Scores never exceed the raw calibration's, so the raw radius bounds every
    match; with cohort normalisation active every face inside it is rescored
    (normalisation can reorder them) before the top ``k`` are kept.
    """
    check_vector(pack, cid, vector)
    max_d = pack.calibration.distance_for_similarity(threshold.applied)
    cohort = pack_cohort(svc, pack, cid)
    active = pack.scorer.active(cohort)
    found = svc.index.search(cid, vector, (MAX_SEARCH_FACES if active else k) + (1 if exclude else 0), max_d,
                             expect=pack.model_version)
    hits = [(fid, d) for fid, d in found if fid != exclude]
    ids, vectors = svc.index.vectors(cid, [fid for fid, _ in hits], expect=pack.model_version)
    scores = score(pack.scorer, cohort, vector, vectors, [exclude] if exclude else None, ids)
    rows = {r["face_id"]: r for r in svc.catalog.get_faces(cid, ids)}
    dist = dict(hits)
    order = sorted(range(len(ids)), key=lambda i: (-scores.similarity[i], dist[ids[i]], ids[i]))
    out = []
    for i in order:
        fields = match_fields(pack.calibration, scores, i)
        if ids[i] in rows and fields["Similarity"] >= threshold.applied:
            out.append({**fields, "Face": stored_face(rows[ids[i]], pack.model_version)})
    return out[:k], search_report(scores.report, found)


def check_vector(pack: Pack, cid: str, vector: np.ndarray) -> None:
    """A probe of another shape than the collection's pack makes was not made by that pack: refuse it."""
    shape = np.shape(vector)
    if shape[-1:] != (pack.spec.dim,):
        raise PackUnavailableError(
            f"A {shape[-1] if shape else 0}-d probe cannot search collection {cid} ({pack.spec.dim}-d "
            f"{pack.model_version} vectors); vectors of different model packs are never compared.")


def search_faces_by_image(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    collection = svc.catalog.get_collection(cid)
    pack = collection_pack(svc, call, collection)
    rule = svc.matching_rule(call, cid)
    k = _max_faces(call, rule)
    data = image_bytes(p.get("Image"), svc.buckets)
    # the response carries the probe's box and confidence, no landmarks: FaceMesh is not run
    result = pack.engines.analyze(data, max_faces=1, landmarks=False)
    if not result.faces:
        svc.refuse(call, cid, "no-face", InvalidParameterError("No face was found in Image."))
    probe = result.faces[0]
    quality_filter = p.get("QualityFilter") or "NONE"
    if quality_reasons(probe, quality_filter):
        svc.refuse(call, cid, "quality", InvalidParameterError(
            f"The probe face fails QualityFilter {quality_filter}: "
            + ", ".join(quality_reasons(probe, quality_filter))))
    gate_probe(svc, call, cid, probe, rule)
    threshold = svc.search_threshold(p.get("FaceMatchThreshold"), svc.index.size(cid), rule)
    matches, scoring = search_vector(svc, pack, cid, probe.descriptor, threshold, k)  # type: ignore[arg-type]
    detail = face_detail(probe)
    with svc.catalog.transaction() as tx:
        rec = svc.record(tx, call, cid, {
            "image_sha256": sha256(data), **_threshold_details(threshold), **scoring_details(scoring),
            "candidates": [{"FaceId": m["Face"]["FaceId"], "Similarity": m["Similarity"]} for m in matches],
        })
        if matches:  # the probe is kept only with a review record, and only a search with candidates has one
            keep_probe(svc, tx, collection, rec["seq"], data, detail["BoundingBox"], call.at)
    return {
        "SearchedFaceBoundingBox": detail["BoundingBox"],
        "SearchedFaceConfidence": detail["Confidence"],
        "FaceMatches": matches,
        "FaceModelVersion": wire_version(pack.model_version),
        "Faceledger": {**match_report(pack.calibration, threshold, scoring, rec["seq"], rule),
                       **calibration_counts(matches)},
    }


def face_vector(svc: Service, cid: str, face_id: str) -> np.ndarray:
    rows = svc.catalog.get_faces(cid, [face_id], with_vectors=True)
    if not rows:
        raise ResourceNotFoundError(f"Face {face_id} is not in collection {cid}.")
    return np.asarray(rows[0]["vector"], dtype=np.float32)


def search_faces(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    pack = collection_pack(svc, call, svc.catalog.get_collection(cid))
    face_id = str(p.get("FaceId") or "")
    rule = svc.matching_rule(call, cid)
    k = _max_faces(call, rule)
    vector = face_vector(svc, cid, face_id)
    threshold = svc.search_threshold(p.get("FaceMatchThreshold"), svc.index.size(cid), rule)
    matches, scoring = search_vector(svc, pack, cid, vector, threshold, k, exclude=face_id)
    with svc.catalog.transaction() as tx:
        rec = svc.record(tx, call, cid, {
            "face_id": face_id, **_threshold_details(threshold), **scoring_details(scoring),
            "candidates": [{"FaceId": m["Face"]["FaceId"], "Similarity": m["Similarity"]} for m in matches],
        })
    return {
        "SearchedFaceId": face_id,
        "FaceMatches": matches,
        "FaceModelVersion": wire_version(pack.model_version),
        "Faceledger": {**match_report(pack.calibration, threshold, scoring, rec["seq"], rule),
                       **calibration_counts(matches)},
    }
