"""MigrateCollection: re-describe a collection's faces with another model pack, in place.

faceledger keeps no enrolled image, so a face can be re-described only from
what the deployment really holds:

* ``original``: the enrolled image itself, found by its SHA-256 (every face
  row has ``image_sha256``) among the files of the service's buckets (the
  folders S3Object requests read: FACELEDGER_BUCKETS and ``<data_dir>/buckets``);
  the new pack's detector runs on it and the face whose box overlaps the
  stored box best (IoU at least ``MIN_IOU``) is described;
* ``thumbnail`` (only when asked: ``UseThumbnails``): the 160-pixel review
  thumbnail of a collection tagged ``faceledger:thumbnails=true``, a lossy
  JPEG crop, so the descriptor is weaker than from the original;
* otherwise the face must be re-enrolled: the response lists its FaceId and
  ExternalImageId with the reason.

The collection keeps serving its own pack while the CLI walks it in batches
(``After``/``NextFaceId``): each batch's new vectors are staged (store/staging.py),
not written over the old ones. When every face has one, one transaction swaps
them all in, re-pins the collection and writes the ``CollectionMigrated``
record; the index is reloaded under the writers' lock, labelled with the new
pack, so a search that began on the old vectors is refused rather than mixed.
An interrupted run leaves the collection as it was (plus staged rows, which
the next run reuses); a face deleted meanwhile takes its staged row along.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import InvalidParameterError
from .collections import check_collection_id
from .core import Call, Service
from .faces import HARD_REASONS
from .packs import Pack

MIGRATED = "CollectionMigrated"
MIN_IOU = 0.3
MAX_BATCH = 500
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_ORIGINAL_BYTES = 15 * 1024 * 1024  # as S3Object requests


def _iou(a: dict, b: dict) -> float:
    ax1, ay1 = a["Left"] + a["Width"], a["Top"] + a["Height"]
    bx1, by1 = b["Left"] + b["Width"], b["Top"] + b["Height"]
    w = max(0.0, min(ax1, bx1) - max(a["Left"], b["Left"]))
    h = max(0.0, min(ay1, by1) - max(a["Top"], b["Top"]))
    inter = w * h
    union = a["Width"] * a["Height"] + b["Width"] * b["Height"] - inter
    return inter / union if union > 0 else 0.0


def originals(svc: Service, wanted: set[str]) -> dict[str, Path]:
    """SHA-256 -> a bucket file with that content, for the digests in ``wanted``."""
    folders = [Path(p) for p in dict(svc.buckets).values()]
    root = Path(svc.settings.data_dir) / "buckets"
    if root.is_dir():
        folders += [p for p in root.iterdir() if p.is_dir()]
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if len(found) == len(wanted):
                return found
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            if path.stat().st_size > MAX_ORIGINAL_BYTES:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in wanted:
                found.setdefault(digest, path)
    return found


def describe(svc: Service, pack: Pack, face: dict, source: Path | None,
             use_thumbnails: bool) -> tuple[object | None, str]:
    """The face's descriptor under ``pack`` and where it came from, or None and why not."""
    if source is not None:
        result = pack.engines.analyze(source.read_bytes())
        scored = [(_iou(f.ratio_box(), face["bbox"]), f) for f in result.faces
                  if f.descriptor is not None]
        best = max(scored, key=lambda t: t[0], default=None)
        if best is not None and best[0] >= MIN_IOU:
            return best[1].descriptor, f"original:{source.name}"
        reason = f"{pack.model_version} finds no face at the enrolled box in {source.name}"
    else:
        reason = "the enrolled image is not in any bucket (matched by SHA-256)"
    if use_thumbnails:
        jpeg = svc.catalog.get_thumbnail(face["face_id"])
        if jpeg is None:
            return None, reason + "; no thumbnail is kept"
        faces = [f for f in pack.engines.analyze(jpeg).faces
                 if f.descriptor is not None and not (set(f.unindexable_reasons) & HARD_REASONS)]
        if faces:
            return max(faces, key=lambda f: f.width * f.height).descriptor, "thumbnail"
        reason += f"; {pack.model_version} finds no usable face in its thumbnail"
    return None, reason


def migrate_collection(svc: Service, call: Call) -> dict:
    p = call.params
    cid = check_collection_id(p.get("CollectionId"))
    target_version = p.get("ModelVersion")
    if not isinstance(target_version, str) or not target_version:
        raise InvalidParameterError("ModelVersion (the pack to migrate to) is required.")
    limit = 100 if p.get("MaxFaces") is None else p["MaxFaces"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise InvalidParameterError(f"MaxFaces must be a whole number between 1 and {MAX_BATCH}.")
    after = p.get("After")
    if after is not None and not isinstance(after, str):
        raise InvalidParameterError("After must be the NextFaceId of the previous batch (a string).")
    collection = svc.catalog.get_collection(cid)
    if collection["model_version"] == target_version:
        return {"CollectionId": cid, "ModelVersion": target_version, "Staged": [], "MustReEnroll": [],
                "NextFaceId": None, "Swapped": False, "Remaining": 0,
                "Note": f"{cid} is already pinned to {target_version}."}
    target = svc.packs.get(target_version)  # not installed or not calibrated: refused with the reason
    call.pack = target
    todo = [f for f in svc.catalog.unstaged_faces(cid, target.model_version, 1_000_000)
            if after is None or f > str(after)][:limit]
    rows = svc.catalog.get_faces(cid, todo)
    sources = originals(svc, {r["image_sha256"] for r in rows if r.get("image_sha256")})
    staged, must = [], []
    for row in rows:
        vector, how = describe(svc, target, row, sources.get(row.get("image_sha256") or ""),
                               bool(p.get("UseThumbnails")))
        if vector is None:
            must.append({"FaceId": row["face_id"], "ExternalImageId": row.get("external_image_id"), "Reason": how})
        else:
            staged.append((row["face_id"], vector, how))
    with svc.catalog.transaction() as tx:
        svc.catalog.discard_staged(tx, cid, other_than=target.model_version)  # an earlier run to another pack
        if staged:
            svc.catalog.stage_vectors(tx, cid, target.model_version, target.spec.dim, staged, call.at)
        svc.record(tx, call, cid, {"from_model_version": collection["model_version"], "in_place": True,
                                   "staged": [{"face_id": f, "source": s} for f, _, s in staged],
                                   "must_re_enrol": [m["FaceId"] for m in must]})
    next_id = todo[-1] if len(todo) == limit else None
    remaining = len(svc.catalog.unstaged_faces(cid, target.model_version, 1_000_000))
    swapped = False
    if next_id is None and remaining == 0 and not p.get("DryRun"):
        swapped = swap(svc, call, cid, collection["model_version"], target)
    return {"CollectionId": cid, "ModelVersion": target.model_version,
            "Staged": [{"FaceId": f, "Source": s} for f, _, s in staged], "MustReEnroll": must,
            "NextFaceId": next_id, "Swapped": swapped, "Remaining": remaining}


def swap(svc: Service, call: Call, cid: str, old_version: str, target: Pack) -> bool:
    """Every staged vector in, the collection re-pinned, the record written: one transaction, then the index."""
    spec = target.spec
    with svc.write_lock:  # no IndexFaces commits between the swap and the index reload
        with svc.catalog.transaction() as tx:
            collection = svc.catalog.get_collection(cid)
            if collection["model_version"] != old_version:
                return False  # another run swapped it meanwhile
            counts = svc.catalog.swap_staged(tx, cid, spec.model_version, spec.dim, spec.metric)
            svc.append(tx, operation=MIGRATED, principal=call.principal.access_key_id, collection_id=cid,
                       details={"request_id": call.ctx.request_id, "from_model_version": old_version,
                                "model_version": spec.model_version, "calibration": target.calibration.version,
                                "dim": spec.dim, "metric": spec.metric, "faces": collection["face_count"],
                                "sources": counts, "in_place": True}, at=call.at)
        ids, matrix = svc.catalog.iter_vectors(cid)
        svc.index.load(cid, ids, matrix, dim=spec.dim, metric=spec.metric, pack=spec.model_version)
    return True
