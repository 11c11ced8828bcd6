"""The review queue and one search's review page, for the web console.

The queue lists searches that still have undecided candidates (kept in the
``review_pending`` index, written with each search's ledger record), oldest
first, filtered by purpose, case and collection, and within what a bound
reviewer key may see. A search's page is GetReview (the same function the
API runs) plus what the search's ledger record says about how it was scored.
Neither writes anything but the index's upkeep (dropping entries found
fully decided); decisions go through ``ReviewCandidate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..engine.calibration import expected_false_candidates, fmr_from_similarity
from ..errors import AccessDeniedError, ResourceNotFoundError
from .audit import LedgerFilter, one
from .context import Principal, authorize, may
from .core import CANDIDATE_NOTE, Service
from .review import status

QUEUE_LIMIT = 200
PAGE = 500  # index entries read at a time


def _scope(principal: Principal, purpose: str | None, case: str | None) -> tuple[str | None, str | None]:
    """A reviewer key bound to a purpose or case sees only those, whatever the filter asks."""
    bound = principal.defaults
    for what, asked in (("purpose", purpose), ("case", case)):
        if bound.get(what) and asked and asked != bound[what]:
            raise AccessDeniedError(f"This key reviews {what} {bound[what]!r} only.")
    return purpose or bound.get("purpose"), case or bound.get("case")


def _awaiting(svc: Service, collection_id: str | None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Search records from the review index, oldest first; entries found fully decided (written before
    the index, or left by a crash between a decision and its index update) or archived are dropped."""
    after = 0
    while True:
        seqs = svc.catalog.pending_reviews(collection_id, after, PAGE)
        stale = []
        for seq in seqs:
            try:
                rec = one(svc.ledger, seq)
            except ResourceNotFoundError:
                stale.append(seq)
                continue
            st = status(svc, rec)
            if any(c["Status"] == "PENDING" for c in st["Candidates"]):
                yield rec, st
            else:
                stale.append(seq)
        if stale:
            with svc.catalog.transaction() as tx:
                svc.catalog.drop_pending_reviews(tx, stale)
        if len(seqs) < PAGE:
            return
        after = seqs[-1]


def review_queue(svc: Service, principal: Principal, *, purpose: str | None = None, case: str | None = None,
                 collection_id: str | None = None, limit: int = QUEUE_LIMIT) -> list[dict[str, Any]]:
    """Searches with at least one PENDING candidate, oldest first (from the review index, not a ledger scan)."""
    authorize(principal, "GetReview")
    purpose, case = _scope(principal, purpose, case)
    flt = LedgerFilter(purpose=purpose, case=case, collection_id=collection_id)
    out: list[dict[str, Any]] = []
    for rec, st in _awaiting(svc, collection_id):
        if not flt.matches(rec):
            continue
        pending = [c for c in st["Candidates"] if c["Status"] == "PENDING"]
        out.append({
            "SearchId": rec["seq"], "At": rec["at"], "Operation": rec["operation"],
            "CollectionId": rec["collection_id"], "Purpose": st["Purpose"], "Case": st["Case"],
            "SearchedBy": rec["principal"], "Candidates": len(st["Candidates"]), "Pending": len(pending),
            "ConfirmationsRequired": st["ConfirmationsRequired"],
            # two-person state: candidates with some but not all of the confirmations they need
            "AwaitingSecond": sum(1 for c in pending if c["Confirmations"] > 0),
        })
        if len(out) >= limit:
            break
    return out


def _scores(rec: dict[str, Any]) -> tuple[dict[str, float | None], list[str]]:
    """Each candidate's Similarity as the search recorded it, and which candidates are enrolled faces
    (a user, or a CompareFaces 'target', is not)."""
    d = rec["details"]
    sims: dict[str, float | None] = {}
    face_ids: list[str] = []
    for c in d.get("candidates", []):
        for m in [c] + list(c.get("Matches", [])):  # a video person's matches are faces too
            if m.get("FaceId"):
                sims[m["FaceId"]] = m.get("Similarity")
                face_ids.append(m["FaceId"])
            elif m.get("UserId"):
                sims[m["UserId"]] = m.get("Similarity")
    if rec["operation"] == "CompareFaces" and d.get("matches"):
        sims["target"] = max(float(x) for x in d["matches"])
    return sims, face_ids


def search_page(svc: Service, principal: Principal, review: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer needs beside GetReview's ``review``: the search's scoring, per candidate."""
    rec = one(svc.ledger, int(review["SearchId"]))
    d = rec["details"]
    sims, face_ids = _scores(rec)
    applied = d.get("threshold_applied")
    gallery = d.get("gallery_size")
    cid = rec["collection_id"]
    try:
        present = {f["face_id"] for f in svc.catalog.get_faces(cid, face_ids)} if cid and face_ids else set()
    except ResourceNotFoundError:  # the collection was deleted since the search, and its faces with it
        present = set()
    may_see = may(principal, "ReviewCandidate")  # images go only to keys that may review
    candidates = []
    for c in review["Candidates"]:
        sim = sims.get(c["Candidate"])
        mine = [x for x in c["Decisions"] if x["Reviewer"] == principal.access_key_id]
        candidates.append({**c, "Similarity": sim,
                           "EstimatedFalseMatchRate": fmr_from_similarity(sim) if sim is not None else None,
                           "DecidedByMe": mine[0]["Decision"] if mine else None,
                           "FaceDeleted": c["Candidate"] in face_ids and c["Candidate"] not in present,
                           "Image": may_see and svc.catalog.get_thumbnail(c["Candidate"]) is not None})
    own = rec["principal"] == principal.access_key_id
    try:
        authorize(principal, "ReviewCandidate")
        may_decide = not own
    except AccessDeniedError:
        may_decide = False
    return {
        **review, "Candidates": candidates, "At": rec["at"], "CollectionId": rec["collection_id"],
        "SearchedBy": rec["principal"], "GallerySize": gallery,
        "ExpectedFalseCandidates": expected_false_candidates(gallery, applied)
        if gallery is not None and applied is not None else None,
        "ThresholdRequested": d.get("threshold_requested"), "ThresholdApplied": applied,
        "ThresholdFloor": d.get("threshold_floor"), "ThresholdRaised": bool(d.get("threshold_raised")),
        "Scoring": d.get("scoring"), "CohortSize": d.get("cohort_size"), "Calibration": d.get("calibration"),
        "ModelVersion": d.get("model_version"), "PolicyVersion": d.get("policy_version"),
        "InputSha256": d.get("image_sha256") or d.get("source_sha256"), "ProbeFaceId": d.get("face_id"),
        "MayDecide": may_decide, "OwnSearch": own, "Note": CANDIDATE_NOTE, "MaySeeImages": may_see,
        "ProbeImage": may_see and (svc.catalog.get_probe_thumbnail(rec["seq"]) is not None if not d.get("face_id")
                                   else svc.catalog.get_thumbnail(d["face_id"]) is not None),
    }
