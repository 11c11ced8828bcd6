"""Request validation and response checking against botocore's Rekognition model."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from faceledger.api.errors import UnknownOperationError
from faceledger.api.model import (
    SUPPORTED_OPERATIONS,
    check_response,
    service_model,
    shape,
    validate_request,
)
from faceledger.api.patterns import compile_pattern
from faceledger.errors import ImageTooLargeError, InvalidImageError, InvalidParameterError

UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SAMPLES = {
    "CollectionId": "people.v1",
    "ExternalImageId": "img:0001",
    "FaceId": UUID,
    "ImageId": UUID,
    "IndexFacesModelVersion": "6.0",
    "JobId": "job-1",
    "JobTag": "nightly/run=1",
    "RoleArn": "arn:aws:iam::123456789012:role/rek",
    "S3Bucket": "bucket",
    "SNSTopicArn": "arn:aws:sns:us-east-1:123456789012:topic",
    "TagKey": "team",
    "TagValue": "vision",
    "UserId": "user:42",
    "ClientRequestToken": "token-1",
    "ResourceArn": "arn:aws:rekognition:us-east-1:123456789012:collection/people",
}
PNG = b"\x89PNG\r\n\x1a\n-pretend"


def example(name: str, *, output: bool, depth: int = 0) -> Any:
    """A value for shape ``name`` that satisfies every constraint, all members filled."""
    spec = shape(name)
    kind = spec["type"]
    if kind == "structure":
        members = spec.get("members", {})
        if depth > 6:
            return {
                m: example(members[m]["shape"], output=output, depth=depth + 1)
                for m in spec.get("required", [])
            }
        keys = ["Bytes"] if name == "Image" and not output else list(members)
        return {m: example(members[m]["shape"], output=output, depth=depth + 1) for m in keys}
    if kind == "list":
        return [example(spec["member"]["shape"], output=output, depth=depth + 1)]
    if kind == "map":
        return {
            example(spec["key"]["shape"], output=output): example(
                spec["value"]["shape"], output=output
            )
        }
    if kind == "string":
        if "enum" in spec:
            return spec["enum"][0]
        return SAMPLES.get(name, "x" * max(1, spec.get("min", 1)))
    if kind in ("integer", "long"):
        return max(1, spec.get("min", 1)) if spec.get("max", 1) >= 1 else spec["min"]
    if kind in ("float", "double"):
        return float(spec.get("min", 50))
    if kind == "boolean":
        return True
    if kind == "blob":
        return PNG if output else base64.b64encode(PNG).decode()
    if kind == "timestamp":
        return 1_700_000_000
    raise AssertionError(kind)


def full_request(operation: str) -> dict[str, Any]:
    name = service_model()["operations"][operation].get("input", {}).get("shape")
    return example(name, output=False) if name else {}


@pytest.mark.parametrize("operation", SUPPORTED_OPERATIONS)
def test_every_operation_accepts_a_full_valid_request(operation: str) -> None:
    params = validate_request(operation, full_request(operation))
    # botocore's own client-side validator agrees that these params are valid.
    model = ServiceModel(service_model(), "rekognition")
    input_shape = model.operation_model(operation).input_shape
    if input_shape is not None:
        report = ParamValidator().validate(params, input_shape)
        assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("operation", SUPPORTED_OPERATIONS)
def test_every_operation_output_example_passes_check_response(operation: str) -> None:
    name = service_model()["operations"][operation].get("output", {}).get("shape")
    check_response(operation, example(name, output=True) if name else {})


def test_supported_operations_exist_in_the_model() -> None:
    assert len(SUPPORTED_OPERATIONS) == 25
    assert set(SUPPORTED_OPERATIONS) <= set(service_model()["operations"])


def test_blobs_are_decoded_and_floats_coerced() -> None:
    params = validate_request(
        "SearchFacesByImage",
        {
            "CollectionId": "c",
            "Image": {"Bytes": base64.b64encode(PNG).decode()},
            "FaceMatchThreshold": 90,
            "MaxFaces": 10,
            "QualityFilter": None,
        },
    )
    assert params == {
        "CollectionId": "c",
        "Image": {"Bytes": PNG},
        "FaceMatchThreshold": 90.0,
        "MaxFaces": 10,
    }
    assert isinstance(params["FaceMatchThreshold"], float)


@pytest.mark.parametrize(
    ("operation", "body", "fragment"),
    [
        (
            "CreateCollection",
            {},
            "Value at 'collectionId' failed to satisfy constraint: Member must not be null",
        ),
        ("CreateCollection", {"CollectionId": None}, "must not be null"),
        ("CreateCollection", {"CollectionId": ""}, "greater than or equal to 1"),
        (
            "CreateCollection",
            {"CollectionId": "a/b"},
            "regular expression pattern: [a-zA-Z0-9_.\\-]+",
        ),
        ("CreateCollection", {"CollectionId": 5}, "must be a string"),
        (
            "CreateCollection",
            {"CollectionId": "c", "Tags": {"aws:owner": "x"}},
            "tags.aws:owner.key",
        ),
        ("CreateCollection", {"CollectionId": "c", "Tags": []}, "must be a map"),
        ("CreateCollection", {"collectionId": "c"}, "Unknown member 'collectionId'"),
        ("SearchFaces", {"CollectionId": "c", "FaceId": UUID.upper()}, "faceId"),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "MaxFaces": 4097},
            "less than or equal to 4096",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "MaxFaces": 0},
            "greater than or equal to 1",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "MaxFaces": True},
            "must be an integer",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "MaxFaces": 2.5},
            "must be an integer",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "FaceMatchThreshold": 100.5},
            "less than or equal to 100",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "FaceMatchThreshold": "90"},
            "must be a number",
        ),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": UUID, "FaceMatchThreshold": float("nan")},
            "finite",
        ),
        ("DeleteFaces", {"CollectionId": "c", "FaceIds": []}, "greater than or equal to 1"),
        ("DeleteFaces", {"CollectionId": "c", "FaceIds": UUID}, "must be a list"),
        ("DeleteFaces", {"CollectionId": "c", "FaceIds": [UUID, "nope"]}, "faceIds.2.member"),
        (
            "IndexFaces",
            {"CollectionId": "c", "Image": {"Bytes": "AAAA"}, "QualityFilter": "BEST"},
            "enum value set",
        ),
        (
            "IndexFaces",
            {"CollectionId": "c", "Image": {"Bytes": "AAAA"}, "ExternalImageId": "a b"},
            "externalImageId",
        ),
        ("CreateUser", {"CollectionId": "c", "UserId": "u" * 129}, "less than or equal to 128"),
        (
            "CreateUser",
            {"CollectionId": "c", "UserId": "u", "ClientRequestToken": "a.b"},
            "clientRequestToken",
        ),
        ("ListCollections", {"MaxResults": -1}, "greater than or equal to 0"),
        ("DetectFaces", {"Image": "AAAA"}, "must be a structure"),
        ("DetectFaces", {"Image": {"Bytes": "AAA"}}, "valid base64"),
        (
            "DetectFaces",
            {"Image": {"Bytes": "AAAA", "S3Object": {"Bucket": "b"}}},
            "Exactly one of",
        ),
        ("DetectFaces", {"Image": {"Bytes": None}}, "Exactly one of"),
        ("DetectFaces", {"Image": {"S3Object": {"Bucket": "b c"}}}, "image.s3Object.bucket"),
        (
            "CompareFaces",
            {"SourceImage": {"Bytes": "AAAA"}, "TargetImage": {}},
            "Exactly one of targetImage",
        ),
        (
            "StartFaceSearch",
            {"CollectionId": "c", "Video": {"S3Object": {}}, "JobTag": "a b"},
            "jobTag",
        ),
        ("TagResource", {"ResourceArn": "arn:short", "Tags": {}}, "greater than or equal to 20"),
        ("ListTagsForResource", [], "JSON object"),
    ],
)
def test_invalid_requests(operation: str, body: Any, fragment: str) -> None:
    with pytest.raises(InvalidParameterError) as exc:
        validate_request(operation, body)
    assert fragment in exc.value.message
    assert exc.value.code == "InvalidParameterException"


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(InvalidParameterError, match=r"^2 validation errors detected: "):
        validate_request("SearchFaces", {"CollectionId": "a b", "MaxFaces": 0, "FaceId": UUID})


def test_image_size_rules() -> None:
    limit = 5 * 1024 * 1024
    ok = base64.b64encode(b"\0" * limit).decode()
    assert len(validate_request("DetectFaces", {"Image": {"Bytes": ok}})["Image"]["Bytes"]) == limit
    too_big = base64.b64encode(b"\0" * (limit + 1)).decode()
    with pytest.raises(ImageTooLargeError) as big:
        validate_request("IndexFaces", {"CollectionId": "c", "Image": {"Bytes": too_big}})
    assert big.value.code == "ImageTooLargeException"
    with pytest.raises(InvalidImageError) as empty:
        validate_request("DetectFaces", {"Image": {"Bytes": ""}})
    assert empty.value.code == "InvalidImageFormatException"


def test_unknown_operation() -> None:
    with pytest.raises(UnknownOperationError) as exc:
        validate_request("DetectLabels", {})
    assert exc.value.code == "UnknownOperationException"


def test_every_model_pattern_compiles() -> None:
    patterns = {s["pattern"] for s in service_model()["shapes"].values() if "pattern" in s}
    assert patterns
    for pattern in patterns:
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("team", True),
        ("équipe 2", True),
        ("名前", True),
        ("٣", True),  # Arabic-Indic digit: \p{N}
        ("a\u3000b", True),  # ideographic space: \p{Z}
        ("aws:reserved", False),
        ("a#b", False),
        ("a\u00a7b", False),  # section sign is punctuation, not L/Z/N
        ("emoji😀", False),
    ],
)
def test_unicode_tag_key_pattern(value: str, ok: bool) -> None:
    assert compile_pattern(shape("TagKey")["pattern"])(value) is ok


def test_patterns_match_whole_strings_in_ascii() -> None:
    collection = compile_pattern(shape("CollectionId")["pattern"])
    assert collection("abc") and not collection("abc def") and not collection("ábc")
    with pytest.raises(ValueError):
        compile_pattern(r"[\p{Lu}]+")
    # Java's \w is ASCII-only; Python's is not unless re.ASCII is set.
    assert re.fullmatch(r"\w", "é") is not None
    sns = compile_pattern(shape("SNSTopicArn")["pattern"])
    assert sns("arn:aws:sns:us-east-1:123456789012:t")
    assert not sns("arn:aws:sns:us-east-1:éééééééééééé:t")


def test_check_response_finds_problems() -> None:
    good = {"CollectionIds": ["a"], "FaceModelVersions": ["1"]}
    check_response("ListCollections", good)
    with pytest.raises(ValueError, match="Unknown member 'Extra'"):
        check_response("ListCollections", {**good, "Extra": 1})
    check_response("ListCollections", {**good, "Extra": 1}, allow_extra=True)
    with pytest.raises(ValueError, match="must be a list"):
        check_response("ListCollections", {"CollectionIds": "a"})
    with pytest.raises(ValueError, match="milliseconds"):
        check_response("DescribeCollection", {"CreationTimestamp": 1_700_000_000_000})
    with pytest.raises(ValueError, match="less than or equal to 100"):
        check_response("DetectFaces", {"FaceDetails": [{"Confidence": 101.0}]})
