"""DetectFaces, IndexFaces, ListFaces, DeleteFaces."""

from __future__ import annotations

import re
import uuid

import numpy as np

from ..engine.quality import quality_score
from ..engine.registry import wire_version
from ..engine.report import face_detail
from ..engine.types import Face
from ..errors import InvalidParameterError
from .collections import check_collection_id
from .core import Call, Service
from .images import image_bytes, sha256
from .pagination import page
from .replay import remember, replayed
from .retention import consent_for_enrolment, recheck_consent
from .thumbnails import keep_faces

EXTERNAL_ID = re.compile(r"^[a-zA-Z0-9_.\-:]{1,255}$")
MAX_FACES_PER_IMAGE = 100
HARD_REASONS = frozenset({"SMALL_BOUNDING_BOX", "EXTREME_POSE"})


def all_attributes(call: Call, member: str = "Attributes") -> bool:
    attrs = call.params.get(member) or ["DEFAULT"]
    return "ALL" in attrs


def check_pinned(svc: Service, collection: dict) -> None:
    if collection["model_version"] != svc.model_version:
        raise InvalidParameterError(
            f"Collection {collection['collection_id']} holds {collection['model_version']} vectors; "
            f"this service runs {svc.model_version}. Vectors of different versions are never compared."
        )


def detect_faces(svc: Service, call: Call) -> dict:
    data = image_bytes(call.params.get("Image"), svc.buckets)
    result = svc.engines.analyze(data, descriptors=False)
    details = [face_detail(f, all_attributes=all_attributes(call)) for f in result.faces]
    with svc.catalog.transaction() as tx:
        svc.record(tx, call, None, {"image_sha256": sha256(data), "faces": len(details)})
    return {"FaceDetails": details}


def quality_reasons(face: Face, quality_filter: str) -> list[str]:
    if quality_filter == "NONE":
        return []
    reasons = list(face.unindexable_reasons)
    if quality_filter == "LOW":
        return [r for r in reasons if r in HARD_REASONS]
    if quality_filter == "HIGH" and quality_score(face.quality) < 40 and "LOW_FACE_QUALITY" not in reasons:
        reasons.append("LOW_FACE_QUALITY")
    return reasons


def stored_face(row: dict, model_version: str) -> dict:
    out = {
        "FaceId": row["face_id"],
        "BoundingBox": row["bbox"],
        "ImageId": row["image_id"],
        "ExternalImageId": row.get("external_image_id"),
        "Confidence": row["confidence"],
        "IndexFacesModelVersion": wire_version(model_version),
        "UserId": row.get("user_id"),
    }
    return {k: v for k, v in out.items() if v is not None}


def index_faces(svc: Service, call: Call) -> dict:
    earlier = replayed(svc, call)  # the same signed request again: its first answer, no second enrolment
    if earlier is not None:
        return earlier
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    external = p.get("ExternalImageId")
    if external is not None and not EXTERNAL_ID.match(str(external)):
        raise InvalidParameterError("ExternalImageId must be 1-255 of letters, digits and _.-:")
    max_faces = int(p.get("MaxFaces") or MAX_FACES_PER_IMAGE)
    if not 1 <= max_faces <= MAX_FACES_PER_IMAGE:
        raise InvalidParameterError("MaxFaces must be between 1 and 100 for IndexFaces.")
    quality_filter = p.get("QualityFilter") or "AUTO"
    collection = svc.catalog.get_collection(cid)
    check_pinned(svc, collection)
    consent_id = consent_for_enrolment(svc, call, collection)
    data = image_bytes(p.get("Image"), svc.buckets)
    result = svc.engines.analyze(data)
    image_id, digest = str(uuid.uuid4()), sha256(data)
    want_all = all_attributes(call, "DetectionAttributes")
    records, unindexed, rows = [], [], []
    for rank, face in enumerate(result.faces):
        detail = face_detail(face, all_attributes=want_all)
        reasons = quality_reasons(face, quality_filter)
        if rank >= max_faces:
            reasons = ["EXCEEDS_MAX_FACES", *reasons]
        if reasons:
            unindexed.append({"Reasons": reasons, "FaceDetail": detail})
            continue
        row = {
            "face_id": str(uuid.uuid4()), "collection_id": cid, "image_id": image_id,
            "external_image_id": external, "bbox": detail["BoundingBox"],
            "confidence": detail["Confidence"], "created_at": call.at, "user_id": None,
            "image_sha256": digest, "vector": face.descriptor,
            "extra": {"quality": detail["Quality"], "pose": detail["Pose"], "consent_id": consent_id},
        }
        rows.append(row)
        records.append({"Face": stored_face(row, svc.model_version), "FaceDetail": detail})
    response = {"FaceRecords": records, "FaceModelVersion": wire_version(svc.model_version),
                "UnindexedFaces": unindexed}
    with svc.write_lock:  # commit and index update in one order for every writer
        with svc.catalog.transaction() as tx:
            # a concurrent replay may have committed meanwhile, in this process or another one: checked
            # inside the write transaction, after taking the ledger lock the record below takes anyway
            # (SQLite: the transaction already excludes every other writer; PostgreSQL: the advisory lock)
            svc.ledger.serialise(tx)
            earlier = replayed(svc, call)
            if earlier is not None:
                return earlier
            if consent_id is not None:
                recheck_consent(svc, consent_id, call.at)  # a withdrawal may have landed meanwhile
            if rows:
                svc.catalog.add_faces(tx, cid, rows)
                keep_faces(svc, tx, collection, data, [(r["face_id"], r["bbox"]) for r in rows], call.at)
            svc.record(tx, call, cid, {
                "image_sha256": digest, "external_image_id": external, "quality_filter": quality_filter,
                "consent_id": consent_id,
                "face_ids": [r["face_id"] for r in rows],
                "unindexed": [u["Reasons"] for u in unindexed],
            })
            remember(svc, tx, call, response)
        if rows:
            svc.index.add(cid, [r["face_id"] for r in rows], np.stack([r["vector"] for r in rows]))
    return response


def list_faces(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    collection = svc.catalog.get_collection(cid)
    limit = int(p.get("MaxResults") or 1000)
    after = svc.pages.read(p.get("NextToken"), "ListFaces", cid)
    rows, last = page(
        svc.catalog.list_faces(cid, after, limit + 1, user_id=p.get("UserId"), face_ids=p.get("FaceIds")),
        limit, "face_id",
    )
    out: dict = {
        "Faces": [stored_face(r, collection["model_version"]) for r in rows],
        "FaceModelVersion": wire_version(collection["model_version"]),
    }
    if last is not None:
        out["NextToken"] = svc.pages.make("ListFaces", cid, last)
    with svc.catalog.transaction() as tx:
        svc.record(tx, call, cid, {"faces_listed": len(rows)})
    return out


def delete_faces(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    wanted = list(dict.fromkeys(call.params.get("FaceIds") or []))
    if not wanted:
        raise InvalidParameterError("FaceIds must list at least one face.")
    with svc.write_lock:
        with svc.catalog.transaction() as tx:
            svc.catalog.get_collection(cid)
            existing = {f["face_id"]: f for f in svc.catalog.get_faces(cid, wanted)}
            unsuccessful, deletable = [], []
            for fid in wanted:
                f = existing.get(fid)
                if f is None:
                    unsuccessful.append({"FaceId": fid, "Reasons": ["FACE_NOT_FOUND"]})
                elif f.get("user_id"):
                    unsuccessful.append({"FaceId": fid, "UserId": f["user_id"],
                                         "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]})
                else:
                    deletable.append(fid)
            deleted = svc.catalog.delete_faces(tx, cid, deletable) if deletable else []
            svc.record(tx, call, cid, {"face_ids": deleted, "unsuccessful": len(unsuccessful)})
        svc.index.remove(cid, deleted)
    return {"DeletedFaces": deleted, "UnsuccessfulFaceDeletions": unsuccessful}
