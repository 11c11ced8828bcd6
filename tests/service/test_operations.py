"""Service operations over fakes: shapes, thresholds, idempotency, errors, ledger records."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine.calibration import compare_threshold, search_threshold
from faceledger.errors import (
    AccessDeniedError,
    IdempotentParameterMismatchError,
    InvalidImageError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    InvalidS3ObjectError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceledger.store.ledger import Ledger
from faceledger.testing import png_bytes, striped_image

from .conftest import both_stores, principal

RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 200, 30)


def img(colour: tuple[int, int, int]) -> dict:
    return {"Bytes": png_bytes(striped_image(colour))}


def run(service, op: str, role: str = "admin", **params):  # type: ignore[no-untyped-def]
    if op == "IndexFaces":
        params.setdefault("QualityFilter", "NONE")  # flat test colours are not sharp faces
    return service.dispatch(op, params, principal(role), {"request_id": "r1"})


@both_stores
def test_collection_lifecycle_and_pagination(service) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        out = run(service, "CreateCollection", CollectionId=f"c{i}")
        assert out["CollectionArn"].endswith(f":collection/c{i}")
    with pytest.raises(ResourceAlreadyExistsError):
        run(service, "CreateCollection", CollectionId="c0")
    first = run(service, "ListCollections", MaxResults=2)
    assert first["CollectionIds"] == ["c0", "c1"] and first["NextToken"]
    second = run(service, "ListCollections", MaxResults=2, NextToken=first["NextToken"])
    assert second["CollectionIds"] == ["c2", "c3"] and second["NextToken"] != first["NextToken"]
    last = run(service, "ListCollections", MaxResults=2, NextToken=second["NextToken"])
    assert last["CollectionIds"] == ["c4"] and "NextToken" not in last
    with pytest.raises(InvalidPaginationTokenError):
        run(service, "ListCollections", NextToken=first["NextToken"][:-2] + "xx")
    desc = run(service, "DescribeCollection", CollectionId="c1")
    assert desc["FaceCount"] == 0 and desc["FaceModelVersion"] == "1.1"  # wire number of the pipeline
    run(service, "DeleteCollection", CollectionId="c1")
    with pytest.raises(ResourceNotFoundError):
        run(service, "DescribeCollection", CollectionId="c1")
    with pytest.raises(InvalidParameterError):
        run(service, "CreateCollection", CollectionId="bad id!")


@both_stores
def test_index_search_and_strangers(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="people")
    red = run(service, "IndexFaces", CollectionId="people", Image=img(RED), ExternalImageId="red")
    assert len(red["FaceRecords"]) == 1
    run(service, "IndexFaces", CollectionId="people", Image=img(BLUE), ExternalImageId="blue")
    hit = run(service, "SearchFacesByImage", CollectionId="people", Image=img(RED))
    assert [m["Face"]["ExternalImageId"] for m in hit["FaceMatches"]] == ["red"]
    assert hit["FaceMatches"][0]["Similarity"] == pytest.approx(100)
    info = hit["Faceledger"]
    assert info["GallerySize"] == 2 and info["ThresholdApplied"] == pytest.approx(search_threshold(2))
    miss = run(service, "SearchFacesByImage", CollectionId="people", Image=img(GREEN))
    assert miss["FaceMatches"] == []
    # a requested threshold below the calibrated floor is raised, and the response says so
    low = run(service, "SearchFacesByImage", CollectionId="people", Image=img(RED), FaceMatchThreshold=10)
    assert low["Faceledger"]["ThresholdRaised"] is True
    assert low["Faceledger"]["ThresholdApplied"] == pytest.approx(search_threshold(2))
    face_id = red["FaceRecords"][0]["Face"]["FaceId"]
    by_face = run(service, "SearchFaces", CollectionId="people", FaceId=face_id)
    assert by_face["SearchedFaceId"] == face_id and by_face["FaceMatches"] == []
    rec = Ledger(service.catalog).records(operation="SearchFacesByImage", limit=10)
    assert rec[-1]["details"]["threshold_requested"] == 10 and rec[-1]["details"]["threshold_raised"] is True


def test_no_face_and_bad_images(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="c")
    blank = {"Bytes": png_bytes(np.zeros((100, 100, 3), np.uint8))}
    assert run(service, "DetectFaces", Image=blank)["FaceDetails"] == []
    with pytest.raises(InvalidParameterError, match="No face"):
        run(service, "SearchFacesByImage", CollectionId="c", Image=blank)
    out = run(service, "IndexFaces", CollectionId="c", Image=blank)
    assert out["FaceRecords"] == [] and out["UnindexedFaces"] == []
    with pytest.raises(InvalidImageError):
        run(service, "DetectFaces", Image={"Bytes": b"not an image"})
    with pytest.raises(InvalidParameterError, match="exactly one"):
        run(service, "DetectFaces", Image={})
    gif = b"GIF89a" + b"\0" * 20
    with pytest.raises(InvalidImageError, match="accepted formats are JPEG, PNG"):
        run(service, "DetectFaces", Image={"Bytes": gif})


def test_compare_faces_default_threshold(service) -> None:  # type: ignore[no-untyped-def]
    out = run(service, "CompareFaces", SourceImage=img(RED), TargetImage=img(RED))
    assert len(out["FaceMatches"]) == 1 and out["UnmatchedFaces"] == []
    assert out["Faceledger"]["ThresholdApplied"] == pytest.approx(compare_threshold())
    out = run(service, "CompareFaces", SourceImage=img(RED), TargetImage=img(BLUE), SimilarityThreshold=0)
    assert out["FaceMatches"] == [] and len(out["UnmatchedFaces"]) == 1
    assert out["Faceledger"]["ThresholdRaised"] is True


def test_roles_are_enforced(service) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDeniedError, match="searcher"):
        run(service, "CreateCollection", role="searcher", CollectionId="x")
    run(service, "CreateCollection", CollectionId="x")
    with pytest.raises(AccessDeniedError):
        run(service, "IndexFaces", role="searcher", CollectionId="x", Image=img(RED))
    with pytest.raises(AccessDeniedError):
        run(service, "SearchFacesByImage", role="enroller", CollectionId="x", Image=img(RED))


@both_stores
def test_users_and_idempotency(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="u")
    f1 = run(service, "IndexFaces", CollectionId="u", Image=img(RED))["FaceRecords"][0]["Face"]["FaceId"]
    f2 = run(service, "IndexFaces", CollectionId="u", Image=img(RED))["FaceRecords"][0]["Face"]["FaceId"]
    f3 = run(service, "IndexFaces", CollectionId="u", Image=img(BLUE))["FaceRecords"][0]["Face"]["FaceId"]
    run(service, "CreateUser", CollectionId="u", UserId="alice", ClientRequestToken="t1")
    run(service, "CreateUser", CollectionId="u", UserId="alice", ClientRequestToken="t1")  # replay
    with pytest.raises(IdempotentParameterMismatchError):
        run(service, "CreateUser", CollectionId="u", UserId="bob", ClientRequestToken="t1")
    out = run(service, "AssociateFaces", CollectionId="u", UserId="alice", FaceIds=[f1])
    assert out["AssociatedFaces"] == [{"FaceId": f1}] and out["UserStatus"] == "ACTIVE"
    out = run(service, "AssociateFaces", CollectionId="u", UserId="alice", FaceIds=[f2, f3])
    assert out["AssociatedFaces"] == [{"FaceId": f2}]
    assert out["UnsuccessfulFaceAssociations"][0]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    users = run(service, "ListUsers", CollectionId="u")["Users"]
    assert users == [{"UserId": "alice", "UserStatus": "ACTIVE"}]
    found = run(service, "SearchUsersByImage", CollectionId="u", Image=img(RED))
    assert [m["User"]["UserId"] for m in found["UserMatches"]] == ["alice"]
    assert run(service, "SearchUsersByImage", CollectionId="u", Image=img(GREEN))["UserMatches"] == []
    deleted = run(service, "DeleteFaces", CollectionId="u", FaceIds=[f1, f3, "00000000-0000-0000-0000-000000000000"])
    assert deleted["DeletedFaces"] == [f3]
    reasons = {u["FaceId"]: u["Reasons"] for u in deleted["UnsuccessfulFaceDeletions"]}
    assert reasons[f1] == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    run(service, "DisassociateFaces", CollectionId="u", UserId="alice", FaceIds=[f1, f2])
    assert run(service, "ListUsers", CollectionId="u")["Users"][0]["UserStatus"] == "CREATED"


@both_stores
def test_every_effect_has_a_ledger_record_and_chain_verifies(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="l")
    run(service, "IndexFaces", CollectionId="l", Image=img(RED))
    run(service, "SearchFacesByImage", CollectionId="l", Image=img(RED))
    ledger = Ledger(service.catalog)
    ops = [r["operation"] for r in ledger.records(limit=100)]
    assert ops == ["SigningKey", "PolicyLoaded", "CreateCollection", "IndexFaces", "SearchFacesByImage"]
    assert ledger.verify().ok
    idx = ledger.records(operation="IndexFaces")[0]["details"]
    assert len(idx["image_sha256"]) == 64 and len(idx["face_ids"]) == 1


@both_stores
def test_pagination_over_the_longest_ids(service) -> None:  # type: ignore[no-untyped-def]
    long_id = "c" * 255
    run(service, "CreateCollection", CollectionId=long_id)
    for colour in ((200, 30, 30), (30, 30, 200), (30, 200, 30)):
        run(service, "IndexFaces", CollectionId=long_id, Image=img(colour))
    seen, token = [], None
    while True:
        out = run(service, "ListFaces", CollectionId=long_id, MaxResults=1, **({"NextToken": token} if token else {}))
        seen += [f["FaceId"] for f in out["Faces"]]
        token = out.get("NextToken")
        assert token is None or len(token) <= 255
        if not token:
            break
    assert len(seen) == 3 == len(set(seen))
    with pytest.raises(InvalidPaginationTokenError):
        run(service, "ListFaces", CollectionId=long_id, NextToken="~forged.cursor")


def test_describe_collection_arn_has_the_aws_form(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="people")
    arn = run(service, "DescribeCollection", CollectionId="people")["CollectionARN"]
    assert arn == "arn:aws:rekognition:us-east-1:000000000000:collection/people"
    assert run(service, "ListTagsForResource", ResourceArn=arn) == {"Tags": {}}


def test_a_bucket_folder_added_after_start_is_mapped_when_asked(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="c")
    obj = {"S3Object": {"Bucket": "later", "Name": "red.png"}}
    with pytest.raises(InvalidS3ObjectError, match="not mapped"):
        run(service, "IndexFaces", CollectionId="c", Image=obj)
    folder = service.settings.data_dir / "buckets" / "later"
    folder.mkdir(parents=True)
    (folder / "red.png").write_bytes(img(RED)["Bytes"])
    out = run(service, "IndexFaces", CollectionId="c", Image=obj)
    assert len(out["FaceRecords"]) == 1
    for name in ("..", "later/../later"):
        with pytest.raises(InvalidS3ObjectError):
            run(service, "IndexFaces", CollectionId="c", Image={"S3Object": {"Bucket": name, "Name": "red.png"}})


@pytest.mark.parametrize("name", ["a\x00.png", 5, ["red.png"]])
def test_an_s3_object_name_that_no_file_can_have_is_a_clear_error(service, name) -> None:  # type: ignore[no-untyped-def]
    folder = service.settings.data_dir / "buckets" / "pics"
    folder.mkdir(parents=True)
    (folder / "red.png").write_bytes(img(RED)["Bytes"])
    with pytest.raises(InvalidParameterError, match="without NUL"):  # was ValueError/TypeError: a 500
        run(service, "DetectFaces", Image={"S3Object": {"Bucket": "pics", "Name": name}})
