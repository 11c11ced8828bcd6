"""CreateCollection, DescribeCollection, ListCollections, DeleteCollection, tags."""

from __future__ import annotations

import re

import numpy as np

from ..engine.registry import wire_version
from ..errors import InvalidParameterError
from .core import Call, Service
from .pagination import page
from .retention import check_reserved_tags

COLLECTION_ID = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")


def check_collection_id(value: object) -> str:
    if not isinstance(value, str) or not COLLECTION_ID.match(value):
        raise InvalidParameterError(
            "CollectionId must be 1-255 characters of letters, digits, '_', '.' and '-'."
        )
    return value


def arn(svc: Service, collection_id: str) -> str:
    s = svc.settings
    return f"arn:aws:rekognition:{s.region}:{s.account_id}:collection/{collection_id}"


def collection_from_arn(resource_arn: str) -> str:
    prefix, _, cid = resource_arn.rpartition(":collection/")
    if not prefix or not cid:
        raise InvalidParameterError("ResourceArn must be a collection ARN.")
    return check_collection_id(cid)


def create_collection(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    tags = dict(call.params.get("Tags") or {})
    check_reserved_tags(tags)
    spec = svc.packs.default.spec  # pinned to the pack it is created with, for good
    with svc.write_lock:
        with svc.catalog.transaction() as tx:
            svc.catalog.create_collection(tx, cid, spec.model_version, tags, call.at, spec.dim, spec.metric)
            svc.record(tx, call, cid, {"tags": tags})
        if svc.index.size(cid) == 0:  # never replace a shard another writer already filled
            svc.index.load(cid, [], np.zeros((0, spec.dim), dtype=np.float32), dim=spec.dim, metric=spec.metric,
                           pack=spec.model_version)
    return {"StatusCode": 200, "CollectionArn": arn(svc, cid), "FaceModelVersion": wire_version(spec.model_version)}


def describe_collection(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    c = svc.catalog.get_collection(cid)
    return {
        "FaceCount": c["face_count"],
        "UserCount": c.get("user_count", 0),
        "FaceModelVersion": wire_version(c["model_version"]),
        "CollectionARN": arn(svc, cid),
        "CreationTimestamp": c["created_at"],
    }


def list_collections(svc: Service, call: Call) -> dict:
    limit = int(call.params.get("MaxResults") or 1000)
    after = svc.pages.read(call.params.get("NextToken"), "ListCollections", "")
    rows, last = page(svc.catalog.list_collections(after, limit + 1), limit, "collection_id")
    out: dict = {
        "CollectionIds": [r["collection_id"] for r in rows],
        "FaceModelVersions": [wire_version(r["model_version"]) for r in rows],
    }
    if last is not None:
        out["NextToken"] = svc.pages.make("ListCollections", "", last)
    return out


def delete_collection(svc: Service, call: Call) -> dict:
    cid = check_collection_id(call.params.get("CollectionId"))
    with svc.write_lock:
        with svc.catalog.transaction() as tx:
            svc.catalog.get_collection(cid)
            deleted = svc.catalog.delete_collection(tx, cid)
            svc.record(tx, call, cid, {"faces_deleted": deleted})
        svc.index.drop(cid)
    return {"StatusCode": 200}


def tag_resource(svc: Service, call: Call) -> dict:
    cid = collection_from_arn(call.params.get("ResourceArn", ""))
    with svc.catalog.transaction() as tx:
        tags = dict(svc.catalog.get_collection(cid)["tags"])
        tags.update(call.params.get("Tags") or {})
        check_reserved_tags(tags)
        svc.catalog.set_collection_tags(tx, cid, tags)
        svc.record(tx, call, cid, {"tags": tags})
    return {}


def untag_resource(svc: Service, call: Call) -> dict:
    cid = collection_from_arn(call.params.get("ResourceArn", ""))
    with svc.catalog.transaction() as tx:
        kept = dict(svc.catalog.get_collection(cid)["tags"])
        for k in call.params.get("TagKeys") or []:
            kept.pop(k, None)
        svc.catalog.set_collection_tags(tx, cid, kept)
        svc.record(tx, call, cid, {"tags": kept})
    return {}


def list_tags(svc: Service, call: Call) -> dict:
    cid = collection_from_arn(call.params.get("ResourceArn", ""))
    return {"Tags": dict(svc.catalog.get_collection(cid)["tags"])}
