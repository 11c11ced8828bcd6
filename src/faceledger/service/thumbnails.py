"""Face thumbnails for human review: a per-collection choice, off by default.

A collection tagged ``faceledger:thumbnails=true`` keeps, for each enrolled
face, a small JPEG crop sealed under the master key, and for each 1:N search
by image, a crop of the probe face kept with that search's review record.
Both expire after ``faceledger:thumbnail-retention-days`` (default 30 days):
the retention sweep deletes them and writes a ``DeletionReceipt`` (reason
``thumbnail-expired``). A face's thumbnail is deleted with the face row
itself (DeleteFaces, DeleteCollection, consent withdrawal, retention), so the
face's own receipt covers it. Thumbnails are served only to a key that may
review (ReviewCandidate) the search they belong to; no API returns them.
"""

from __future__ import annotations

import io

from PIL import Image

from ..errors import AccessDeniedError, InvalidParameterError, ResourceNotFoundError
from ..imaging import DecodedImage, decode_image
from ..store.db import Transaction
from .context import Principal, RequestContext, authorize
from .core import Call, Service

THUMBNAIL_TAG = "faceledger:thumbnails"
THUMBNAIL_DAYS_TAG = "faceledger:thumbnail-retention-days"
DEFAULT_DAYS = 30
SIZE = 160  # pixels on the longer side
MARGIN = 0.25  # of the box's size, on each side, so the reviewer sees hair and ears
DAY = 86400.0


def check_tags(tags: dict[str, str]) -> None:
    if THUMBNAIL_TAG in tags and tags[THUMBNAIL_TAG] not in ("true", "false"):
        raise InvalidParameterError(f"Tag {THUMBNAIL_TAG} must be 'true' or 'false'.")
    if THUMBNAIL_DAYS_TAG in tags:
        value = tags[THUMBNAIL_DAYS_TAG]
        if not value.isdigit() or not 1 <= int(value) <= 36500:
            raise InvalidParameterError(f"Tag {THUMBNAIL_DAYS_TAG} must be a whole number of days, 1-36500.")


def enabled(collection: dict) -> bool:
    return collection.get("tags", {}).get(THUMBNAIL_TAG) == "true"


def days(collection: dict) -> int:
    value = collection.get("tags", {}).get(THUMBNAIL_DAYS_TAG)
    return int(value) if value else DEFAULT_DAYS


def crop(image: DecodedImage, box: dict) -> bytes:
    """A JPEG of the face in ``box`` (Rekognition ratios) with a margin, at most SIZE pixels."""
    w, h = image.width, image.height
    left, top = box["Left"] * w, box["Top"] * h
    bw, bh = box["Width"] * w, box["Height"] * h
    x0, y0 = max(0, int(left - MARGIN * bw)), max(0, int(top - MARGIN * bh))
    x1, y1 = min(w, int(left + bw * (1 + MARGIN))), min(h, int(top + bh * (1 + MARGIN)))
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = 0, 0, w, h
    face = Image.fromarray(image.pixels[y0:y1, x0:x1])
    face.thumbnail((SIZE, SIZE))
    out = io.BytesIO()
    face.save(out, format="JPEG", quality=85)
    return out.getvalue()


def keep_faces(svc: Service, tx: Transaction, collection: dict, data: bytes,
               faces: list[tuple[str, dict]], at: float) -> None:
    """Inside IndexFaces' transaction: one sealed thumbnail per (face_id, BoundingBox)."""
    if not enabled(collection) or not faces:
        return
    image = decode_image(data)
    expires = at + days(collection) * DAY
    for face_id, box in faces:
        svc.catalog.add_thumbnail(tx, face_id, collection["collection_id"], crop(image, box), at, expires)


def keep_probe(svc: Service, tx: Transaction, collection: dict, search_seq: int, data: bytes, box: dict,
               at: float) -> None:
    """Inside a search's transaction: the probe face, kept with that search's review record."""
    if not enabled(collection):
        return
    svc.catalog.add_probe_thumbnail(tx, search_seq, collection["collection_id"], crop(decode_image(data), box), at,
                                    at + days(collection) * DAY)


def sweep_expired(svc: Service, call: Call) -> int:
    """Delete thumbnails past their retention; one DeletionReceipt per collection."""
    faces, probes = svc.catalog.expired_thumbnails(call.at)
    by_collection: dict[str, tuple[list[str], list[int]]] = {}
    for fid, cid in faces:
        by_collection.setdefault(cid, ([], []))[0].append(fid)
    for seq, cid in probes:
        by_collection.setdefault(cid, ([], []))[1].append(seq)
    total = 0
    for cid, (face_ids, seqs) in sorted(by_collection.items()):
        receipt = Call("DeletionReceipt", {}, call.principal, call.ctx, call.at)
        with svc.catalog.transaction() as tx:
            total += svc.catalog.delete_thumbnails(tx, face_ids, seqs)
            svc.record(tx, receipt, cid, {"reason": "thumbnail-expired", "thumbnail_face_ids": face_ids,
                                          "probe_search_seqs": seqs})
    return total


def for_review(svc: Service, principal: Principal, search_seq: int, face_id: str | None) -> bytes:
    """The probe (``face_id`` None) or a candidate's thumbnail of one search, for a key that may review it."""
    from .review import _candidates, _search_record

    authorize(principal, "ReviewCandidate")
    record = _search_record(svc, search_seq, Call("GetReview", {}, principal, RequestContext()))
    bound = principal.defaults.get("purpose")
    if bound and record["collection_id"] and not svc.policy.purpose(bound).may_search(record["collection_id"]):
        raise AccessDeniedError(f"This key's purpose {bound!r} does not cover collection {record['collection_id']!r}.")
    probe_face = record["details"].get("face_id")  # SearchFaces: the probe is an enrolled face
    if face_id is None:
        jpeg = svc.catalog.get_thumbnail(probe_face) if probe_face else svc.catalog.get_probe_thumbnail(search_seq)
    elif face_id not in _candidates(record):
        raise ResourceNotFoundError(f"{face_id} is not a candidate of search {search_seq}.")
    else:
        jpeg = svc.catalog.get_thumbnail(face_id)
    if jpeg is None:
        raise ResourceNotFoundError("No image is stored for this face (thumbnails off, expired or deleted).")
    return jpeg
