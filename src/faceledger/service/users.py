"""Users (groups of one person's faces): create, delete, list, associate, search.

CreateUser, DeleteUser, AssociateFaces and DisassociateFaces honour
``ClientRequestToken``: a repeat with the same parameters returns the first
answer; with different parameters, IdempotentParameterMismatchException.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

import numpy as np

from ..engine.registry import wire_version
from ..engine.report import face_detail
from ..errors import IdempotentParameterMismatchError, InvalidParameterError, ResourceNotFoundError
from ..store.db import Transaction
from .collections import check_collection_id
from .core import Call, Service, Threshold, match_report
from .faces import collection_pack
from .images import image_bytes, sha256
from .packs import Pack
from .pagination import page
from .replay import token as replay_token
from .scores import matrix, score
from .search import (
    _threshold_details,
    calibration_counts,
    check_vector,
    face_vector,
    gate_probe,
    match_fields,
    pack_cohort,
    scoring_details,
    scoring_report,
    search_report,
)

USER_ID = re.compile(r"^[a-zA-Z0-9_.\-:]{1,128}$")
MAX_FACES_PER_USER = 100


def check_user_id(value: object) -> str:
    if not isinstance(value, str) or not USER_ID.match(value):
        raise InvalidParameterError("UserId must be 1-128 of letters, digits and _.-:")
    return value


def idempotent(svc: Service, call: Call, cid: str | None, work: Callable[[Transaction], dict]) -> dict:
    """Run ``work(tx)`` once per ClientRequestToken; replay or refuse repeats.

    Without a token, the request's signature stands in for one, so an exact
    replay of the signed request also gets the first answer (service/replay.py).
    """
    token = call.params.get("ClientRequestToken") or replay_token(call)
    params = {k: v for k, v in call.params.items() if k != "ClientRequestToken"}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    with svc.catalog.transaction() as tx:
        if token:
            # held to commit: the same token on another process waits here, then reads our answer
            svc.catalog.claim_token(tx, call.operation, token)
            seen = svc.catalog.idempotent_get(call.operation, token)
            if seen is not None:
                if seen[0] != digest:
                    raise IdempotentParameterMismatchError(
                        f"ClientRequestToken {token} was used with different parameters.")
                return dict(seen[1])
        response = work(tx)
        if token:
            svc.catalog.idempotent_put(tx, call.operation, token, digest, response)
    return response


def _status(svc: Service, cid: str, user_id: str) -> str:
    return "ACTIVE" if svc.catalog.user_face_ids(cid, user_id) else "CREATED"


def create_user(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    uid = check_user_id(call.params.get("UserId"))

    def work(tx: Transaction) -> dict:
        svc.catalog.get_collection(cid)
        svc.catalog.create_user(tx, cid, uid, call.at)
        svc.record(tx, call, cid, {"user_id": uid})
        return {}

    return idempotent(svc, call, cid, work)


def delete_user(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    uid = check_user_id(call.params.get("UserId"))

    def work(tx: Transaction) -> dict:
        svc.catalog.get_user(cid, uid)
        svc.catalog.delete_user(tx, cid, uid)
        svc.record(tx, call, cid, {"user_id": uid})
        return {}

    return idempotent(svc, call, cid, work)


def list_users(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    svc.catalog.get_collection(cid)
    limit = int(call.params.get("MaxResults") or 500)
    after = svc.pages.read(call.params.get("NextToken"), "ListUsers", cid)
    rows, last = page(svc.catalog.list_users(cid, after, limit + 1), limit, "user_id")
    out: dict = {"Users": [{"UserId": r["user_id"], "UserStatus": r["user_status"]} for r in rows]}
    if last is not None:
        out["NextToken"] = svc.pages.make("ListUsers", cid, last)
    with svc.catalog.transaction() as tx:
        svc.record(tx, call, cid, {"users_listed": len(rows)})
    return out


def associate_faces(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    uid = check_user_id(p.get("UserId"))
    face_ids = list(dict.fromkeys(p.get("FaceIds") or []))
    threshold = svc.compare_threshold(p.get("UserMatchThreshold"))

    def work(tx: Transaction) -> dict:
        pack = collection_pack(svc, call, svc.catalog.get_collection(cid))
        svc.catalog.get_user(cid, uid)
        existing = svc.catalog.get_faces(cid, svc.catalog.user_face_ids(cid, uid), with_vectors=True)
        rejected = []
        candidates = []
        scoring = scoring_report(svc, pack, cid)
        if existing:
            known = np.stack([np.asarray(r["vector"], np.float32) for r in existing])
            new = [r for r in svc.catalog.get_faces(cid, face_ids, with_vectors=True) if r.get("user_id") != uid]
            candidates += [r["face_id"] for r in svc.catalog.get_faces(cid, face_ids) if r.get("user_id") == uid]
            scores = score(pack.scorer, pack_cohort(svc, pack, cid), known,
                           matrix([r["vector"] for r in new], pack.spec.dim), [r["face_id"] for r in existing],
                           [r["face_id"] for r in new])
            scoring = scores.report
            for i, row in enumerate(new):
                sim = float(scores.similarity[i])
                if sim < threshold.applied:
                    rejected.append({"FaceId": row["face_id"], "UserId": uid, "Confidence": round(sim, 4),
                                     "Reasons": ["LOW_MATCH_CONFIDENCE"]})
                else:
                    candidates.append(row["face_id"])
            found = {r["face_id"] for r in existing} | set(candidates) | {r["FaceId"] for r in rejected}
            candidates += [f for f in face_ids if f not in found]  # let the catalog report FACE_NOT_FOUND
        else:
            candidates = face_ids
        associated, unsuccessful = svc.catalog.associate_faces(tx, cid, uid, candidates)
        unsuccessful = list(unsuccessful) + rejected
        svc.record(tx, call, cid, {"user_id": uid, "associated": list(associated),
                                   "unsuccessful": len(unsuccessful), **_threshold_details(threshold),
                                   **scoring_details(scoring)})
        # AWS returns the list empty rather than leaving it out; its examples index it directly.
        return {"AssociatedFaces": [{"FaceId": f} for f in associated],
                "UnsuccessfulFaceAssociations": unsuccessful, "UserStatus": _status(svc, cid, uid)}

    return idempotent(svc, call, cid, work)


def disassociate_faces(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    uid = check_user_id(p.get("UserId"))
    face_ids = list(dict.fromkeys(p.get("FaceIds") or []))

    def work(tx: Transaction) -> dict:
        svc.catalog.get_user(cid, uid)
        done, unsuccessful = svc.catalog.disassociate_faces(tx, cid, uid, face_ids)
        svc.record(tx, call, cid, {"user_id": uid, "disassociated": list(done)})
        return {"DisassociatedFaces": [{"FaceId": f} for f in done],
                "UnsuccessfulFaceDisassociations": list(unsuccessful), "UserStatus": _status(svc, cid, uid)}

    return idempotent(svc, call, cid, work)


def _user_matches(svc: Service, pack: Pack, cid: str, vectors: np.ndarray, threshold: Threshold, max_users: int,
                  exclude_user: str | None, probe_ids: list[str] | None = None) -> tuple[list[dict], dict]:
    """Users ranked by their best face's Similarity, at or above the threshold, and how they were scored."""
    check_vector(pack, cid, vectors)
    max_d = pack.calibration.distance_for_similarity(threshold.applied)
    # One scan for all probe vectors (ranked by each face's nearest probe), every face within
    # the threshold: unassociated faces cannot crowd a user out of a top-k.
    hits = svc.index.search(cid, vectors, max(1, svc.index.size(cid)), max_d, expect=pack.model_version)
    rows = {r["face_id"]: r for r in svc.catalog.get_faces(cid, [f for f, _ in hits])}
    ids, matrix = svc.index.vectors(cid, [f for f, _ in hits if rows.get(f, {}).get("user_id") not in
                                          (None, exclude_user)], expect=pack.model_version)
    scores = score(pack.scorer, pack_cohort(svc, pack, cid), vectors, matrix, probe_ids, ids)
    best: dict[str, dict] = {}  # user -> match fields of their best face (Similarity, then Distance)
    for i, fid in enumerate(ids):
        user = rows[fid]["user_id"]
        fields = match_fields(pack.calibration, scores, i)
        held = best.get(user)
        if held is None or (-fields["Similarity"], fields["Distance"]) < (-held["Similarity"], held["Distance"]):
            best[user] = fields
    ranked = sorted(best.items(), key=lambda kv: (-kv[1]["Similarity"], kv[1]["Distance"], kv[0]))[:max_users]
    return [{**fields, "User": {"UserId": user, "UserStatus": "ACTIVE"}}
            for user, fields in ranked if fields["Similarity"] >= threshold.applied], search_report(scores.report, hits)


def _max_users(call: Call) -> int:
    n = int(call.params.get("MaxUsers") or 500)
    if not 1 <= n <= 500:
        raise InvalidParameterError("MaxUsers must be between 1 and 500.")
    return n


def search_users(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    pack = collection_pack(svc, call, svc.catalog.get_collection(cid))
    uid, fid = p.get("UserId"), p.get("FaceId")
    if (uid is None) == (fid is None):
        raise InvalidParameterError("SearchUsers needs exactly one of UserId or FaceId.")
    rule = svc.matching_rule(call, cid)
    threshold = svc.search_threshold(p.get("UserMatchThreshold"), svc.index.size(cid), rule)
    out: dict = {"FaceModelVersion": wire_version(pack.model_version)}
    if uid is not None:
        uid = check_user_id(uid)
        svc.catalog.get_user(cid, uid)
        rows = svc.catalog.get_faces(cid, svc.catalog.user_face_ids(cid, uid), with_vectors=True)
        if not rows:
            raise ResourceNotFoundError(f"User {uid} has no faces to search with.")
        vectors = np.stack([np.asarray(r["vector"], np.float32) for r in rows])
        probe_ids = [r["face_id"] for r in rows]
        out["SearchedUser"] = {"UserId": uid}
    else:
        vectors = face_vector(svc, cid, str(fid))[None, :]
        probe_ids = [str(fid)]
        out["SearchedFace"] = {"FaceId": fid}
    matches, scoring = _user_matches(svc, pack, cid, vectors, threshold, min(_max_users(call), rule.max_candidates), uid,
                                     probe_ids)
    with svc.catalog.transaction() as tx:
        rec = svc.record(tx, call, cid, {"user_id": uid, "face_id": fid, **_threshold_details(threshold),
                                         **scoring_details(scoring),
                                   "candidates": [{"UserId": m["User"]["UserId"], "Similarity": m["Similarity"]}
                                                  for m in matches]})
    out["UserMatches"] = matches
    out["Faceledger"] = {**match_report(pack.calibration, threshold, scoring, rec["seq"], rule),
                         **calibration_counts(matches)}
    return out


def search_users_by_image(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    pack = collection_pack(svc, call, svc.catalog.get_collection(cid))
    rule = svc.matching_rule(call, cid)
    data = image_bytes(p.get("Image"), svc.buckets)
    result = pack.engines.analyze(data)
    threshold = svc.search_threshold(p.get("UserMatchThreshold"), svc.index.size(cid), rule)
    out: dict = {"FaceModelVersion": wire_version(pack.model_version), "UserMatches": [], "UnsearchedFaces": []}
    scoring = scoring_report(svc, pack, cid)  # what it would have used: no face, nothing scored
    if result.faces:
        probe = result.faces[0]
        gate_probe(svc, call, cid, probe, rule)
        out["SearchedFace"] = {"FaceDetail": face_detail(probe)}
        out["UserMatches"], scoring = _user_matches(svc, pack, cid, probe.descriptor[None, :],  # type: ignore[index]
                                                    threshold, min(_max_users(call), rule.max_candidates), None)
        out["UnsearchedFaces"] = [{"FaceDetails": face_detail(f), "Reasons": ["FACE_NOT_LARGEST"]}
                                  for f in result.faces[1:]]
    with svc.catalog.transaction() as tx:
        rec = svc.record(tx, call, cid, {"image_sha256": sha256(data), **_threshold_details(threshold),
                                         **scoring_details(scoring),
                                         "candidates": [{"UserId": m["User"]["UserId"], "Similarity": m["Similarity"]}
                                                        for m in out["UserMatches"]]})
    out["Faceledger"] = {**match_report(pack.calibration, threshold, scoring, rec["seq"], rule),
                         **calibration_counts(out["UserMatches"])}
    return out
