"""Every Rekognition operation's response fits botocore's output shape, documented extras aside."""

from __future__ import annotations

import copy

import numpy as np

from faceledger.api.model import check_response, operation_shape, shape
from faceledger.testing import png_bytes, striped_image

from .test_operations import run

DOCUMENTED_EXTRAS = ("Faceledger", "EstimatedFalseMatchRate", "Distance", "Calibration")
# List members AWS itself leaves out unless asked for (documented in docs/operations.md).
OPTIONAL_LISTS: dict[str, tuple[str, ...]] = {}


def strip_extras(value):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {k: strip_extras(v) for k, v in value.items() if k not in DOCUMENTED_EXTRAS}
    if isinstance(value, list):
        return [strip_extras(v) for v in value]
    return value


def list_members(op: str) -> list[str]:
    """The output shape's top-level list members (AWS returns them, empty when there is nothing)."""
    name = operation_shape(op, "output")
    members = shape(name)["members"] if name else {}
    return [m for m, ref in members.items() if shape(ref["shape"])["type"] == "list"]


def checked(service, op: str, **params):  # type: ignore[no-untyped-def]
    out = run(service, op, **params)
    check_response(op, strip_extras(copy.deepcopy(out)))
    missing = [m for m in list_members(op) if m not in out and m not in OPTIONAL_LISTS.get(op, ())]
    assert not missing, f"{op} omits list member(s) {missing}; AWS returns them empty"
    return out


def test_all_operations_answer_in_rekognition_shapes(service) -> None:  # type: ignore[no-untyped-def]
    red = {"Bytes": png_bytes(striped_image((200, 30, 30)))}
    blue = {"Bytes": png_bytes(striped_image((30, 30, 200)))}
    checked(service, "CreateCollection", CollectionId="s", Tags={"team": "a"})
    checked(service, "DescribeCollection", CollectionId="s")
    checked(service, "ListCollections")
    checked(service, "DetectFaces", Image=red, Attributes=["ALL"])
    f1 = checked(service, "IndexFaces", CollectionId="s", Image=red, ExternalImageId="r")["FaceRecords"][0]
    checked(service, "IndexFaces", CollectionId="s", Image=blue, MaxFaces=1, DetectionAttributes=["ALL"])
    checked(service, "ListFaces", CollectionId="s", MaxResults=1)
    checked(service, "SearchFaces", CollectionId="s", FaceId=f1["Face"]["FaceId"])
    checked(service, "SearchFacesByImage", CollectionId="s", Image=red)
    checked(service, "CompareFaces", SourceImage=red, TargetImage=red)
    checked(service, "CreateUser", CollectionId="s", UserId="u")
    checked(service, "AssociateFaces", CollectionId="s", UserId="u", FaceIds=[f1["Face"]["FaceId"]])
    checked(service, "ListUsers", CollectionId="s")
    checked(service, "SearchUsers", CollectionId="s", UserId="u")
    checked(service, "SearchUsersByImage", CollectionId="s", Image=red)
    flat = {"Bytes": png_bytes(np.full((64, 64, 3), 128, np.uint8))}  # no face for the fake detector
    assert checked(service, "SearchUsersByImage", CollectionId="s", Image=flat)["UnsearchedFaces"] == []
    checked(service, "DisassociateFaces", CollectionId="s", UserId="u", FaceIds=[f1["Face"]["FaceId"]])
    checked(service, "DeleteUser", CollectionId="s", UserId="u")
    arn = "arn:aws:rekognition:us-east-1:000000000000:collection/s"
    checked(service, "TagResource", ResourceArn=arn, Tags={"b": "c"})
    checked(service, "ListTagsForResource", ResourceArn=arn)
    checked(service, "UntagResource", ResourceArn=arn, TagKeys=["b"])
    checked(service, "DeleteFaces", CollectionId="s", FaceIds=[f1["Face"]["FaceId"]])
    checked(service, "DeleteCollection", CollectionId="s")
