"""Every string field of every supported operation, fuzzed through a real server: never a 5xx.

The walk is driven by botocore's own input shapes (``api.model``), so a new
operation or member is fuzzed without touching this file. For each string
field (map keys included) one request is built with every *other* required
member valid (so the bad value reaches as deep into the service as it can),
then sent by a raw SigV4-signed client that skips boto3's own validation,
once per bad value: NUL, a lone surrogate (the raw JSON escape ``\\ud800``),
10 kB, and control characters.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from faceledger.api.model import SUPPORTED_OPERATIONS, service_model, shape

from ..conftest import data_path
from .conftest import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_raw import signed_headers  # noqa: E402

BAD_VALUES = {
    "nul": "face\x00.jpg",
    "surrogate": "face\ud800",
    "10kB": "a" * 10_000,
    "control": "\x01\x07\x1b[2J\r\n\t\x7f",
}
# A valid value for each string shape that has a pattern or is a reference.
GOOD = {
    "CollectionId": "fuzzcol",
    "TagKey": "k",
    "TagValue": "v",
    "S3Bucket": "fuzzbucket",
    "S3ObjectName": "face.jpg",
    "ExternalImageId": "ext",
    "UserId": "fuzzuser",
    "ClientRequestToken": "token1",
    "SNSTopicArn": "arn:aws:sns:us-east-1:000000000000:topic",
    "RoleArn": "arn:aws:iam::000000000000:role/r",
    "JobTag": "tag",
    "JobId": "job1",
    "ResourceArn": "arn:aws:rekognition:us-east-1:000000000000:collection/fuzzcol",
    "S3ObjectVersion": "1",
    "PaginationToken": "1",
}
Step = str  # a member name, "[]" (list member), "{k}" / "{v}" (map key / value)


def string_paths(name: str, prefix: tuple[Step, ...] = (), depth: int = 0) -> list[tuple[Step, ...]]:
    spec = shape(name)
    kind = spec["type"]
    if kind == "string":
        return [prefix]
    if depth > 6:
        return []
    if kind == "structure":
        return [p for m, ref in spec.get("members", {}).items()
                for p in string_paths(ref["shape"], (*prefix, m), depth + 1)]
    if kind == "list":
        return string_paths(spec["member"]["shape"], (*prefix, "[]"), depth + 1)
    if kind == "map":
        return [*string_paths(spec["key"]["shape"], (*prefix, "{k}"), depth + 1),
                *string_paths(spec["value"]["shape"], (*prefix, "{v}"), depth + 1)]
    return []


def build(name: str, face: str) -> Any:
    """A valid value of shape ``name``: its required members, plus what an Image or Video needs."""
    spec = shape(name)
    kind = spec["type"]
    if kind == "structure":
        members = spec.get("members", {})
        extra = {"Image": {"Bytes"}, "Video": {"S3Object"}, "S3Object": {"Bucket", "Name"}}.get(name, set())
        wanted = set(spec.get("required", [])) | extra
        return {m: build(members[m]["shape"], face) for m in members if m in wanted}
    if kind == "list":
        return [build(spec["member"]["shape"], face)]
    if kind == "map":
        return {"k": build(spec["value"]["shape"], face)}
    if kind == "string":
        return spec["enum"][0] if "enum" in spec else GOOD.get(name, "fuzz")
    if kind in ("integer", "long"):
        return max(1, int(spec.get("min", 1)))
    if kind in ("float", "double"):
        return 50.0 if spec.get("max", 100) >= 50 else float(spec["max"])
    if kind == "boolean":
        return False
    if kind == "blob":
        return face
    if kind == "timestamp":
        return 0
    raise AssertionError(kind)


def request(operation: str, target: tuple[Step, ...], bad: str, face: str) -> dict[str, Any]:
    name = service_model()["operations"][operation]["input"]["shape"]
    out: dict[str, Any] = _build_target(name, target, bad, face)
    return out


def _build_target(name: str, target: tuple[Step, ...], bad: str, face: str) -> Any:
    """A valid value of shape ``name`` except ``bad`` exactly at ``target``."""
    if not target:
        return bad
    spec = shape(name)
    kind, step = spec["type"], target[0]
    if kind == "structure":
        out = build(name, face)
        if name == "Image" and step == "S3Object":
            out.pop("Bytes", None)
        out[step] = _build_target(spec["members"][step]["shape"], target[1:], bad, face)
        return out
    if kind == "list":
        return [_build_target(spec["member"]["shape"], target[1:], bad, face)]
    if step == "{k}":
        return {bad: build(spec["value"]["shape"], face)}
    return {"k": _build_target(spec["value"]["shape"], target[1:], bad, face)}


def call(url: str, operation: str, body: bytes, **sign: str) -> tuple[int, Any]:
    """POST a signed raw body; (status, decoded JSON or the raw text when it is not JSON)."""
    headers = signed_headers(url + "/", body, f"RekognitionService.{operation}", **sign)
    req = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:200]


def cases() -> list[tuple[str, tuple[Step, ...]]]:
    out = []
    for op in SUPPORTED_OPERATIONS:
        ref = service_model()["operations"][op].get("input")
        if ref is not None:
            out += [(op, p) for p in string_paths(ref["shape"])]
    return out


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("fuzz")
    bucket = base / "bucket"
    bucket.mkdir()
    image = data_path("lfw_dev", "Anthony_Fauci", "Anthony_Fauci_0001.jpg").read_bytes()
    (bucket / "face.jpg").write_bytes(image)
    srv = start_server(base / "data", workers=1, extra_env={"FACELEDGER_BUCKETS": f"fuzzbucket={bucket}"})
    rek = srv.client()
    rek.create_collection(CollectionId="fuzzcol")
    rek.index_faces(CollectionId="fuzzcol", Image={"Bytes": image}, ExternalImageId="ext")
    rek.create_user(CollectionId="fuzzcol", UserId="fuzzuser")
    yield srv, base64.b64encode(image).decode()
    srv.stop()


def test_the_walk_covers_every_operation_and_the_s3_name() -> None:
    found = cases()
    assert {op for op, _ in found} == {
        op for op in SUPPORTED_OPERATIONS if service_model()["operations"][op].get("input") is not None}
    assert ("DetectFaces", ("Image", "S3Object", "Name")) in found
    assert ("CreateCollection", ("Tags", "{k}")) in found
    assert len(found) > 60


def test_no_string_field_gives_a_server_error(fuzz_server) -> None:  # type: ignore[no-untyped-def]
    srv, face = fuzz_server
    failures = []
    sent = 0
    for op, target in cases():
        for label, bad in BAD_VALUES.items():
            params = request(op, target, bad, face)
            body = json.dumps(params).encode()  # ensure_ascii: the surrogate goes as "\ud800"
            status, answer = call(srv.endpoint, op, body, key=srv.key, secret=srv.secret)
            sent += 1
            if status >= 500:
                failures.append(f"{op} {'.'.join(target)} {label}: {status} {answer}")
    assert sent > 240
    assert not failures, "\n".join(failures[:40])
    assert srv.proc.poll() is None


def test_nul_in_s3_object_name_is_a_clear_4xx(fuzz_server) -> None:  # type: ignore[no-untyped-def]
    """The issue's case: it gave 500 ``ValueError: embedded null byte``."""
    srv, _ = fuzz_server
    for name, expected in (("face\x00.jpg", "InvalidParameterException"),  # a malformed name
                           ("a" * 300 + "/" + "b" * 300, "InvalidS3ObjectException"),  # ENAMETOOLONG
                           ("face\ud800", "InvalidParameterException")):  # refused as JSON
        body = json.dumps({"Image": {"S3Object": {"Bucket": "fuzzbucket", "Name": name}}}).encode()
        status, answer = call(srv.endpoint, "DetectFaces", body, key=srv.key, secret=srv.secret)
        assert (status, answer["__type"]) == (400, expected), answer


OWN_STRING_MEMBERS = {  # faceledger's own operations (flat bodies, checked by the service); not Halt
    "CreateConsent": {"Subject": "s", "NoticeText": "n", "NoticeVersion": "1", "Purpose": "p"},
    "ListConsents": {"Subject": "s"},
    "WithdrawConsent": {"ConsentId": "c"},
    "GetReview": {"SearchId": "1"},
    "ReviewCandidate": {"SearchId": "1", "Candidate": "c", "Decision": "CONFIRM", "Reason": "r"},
}


def test_no_string_member_of_our_own_operations_gives_a_server_error(fuzz_server) -> None:  # type: ignore[no-untyped-def]
    srv, _ = fuzz_server
    failures = []
    for op, base in OWN_STRING_MEMBERS.items():
        for member in base:
            for label, bad in BAD_VALUES.items():
                body = json.dumps({**base, member: bad}).encode()
                headers = signed_headers(srv.endpoint + "/", body, f"FaceledgerService.{op}",
                                         key=srv.key, secret=srv.secret)
                req = urllib.request.Request(srv.endpoint + "/", data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=60) as response:
                        status, raw = response.status, response.read()
                except urllib.error.HTTPError as exc:
                    status, raw = exc.code, exc.read()
                if status >= 500:
                    failures.append(f"{op} {member} {label}: {status} {raw[:200]!r}")
    assert not failures, "\n".join(failures)
