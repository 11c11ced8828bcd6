"""What a raised threshold did, visible through real SDKs: boto3 and the AWS SDK for JavaScript v3.

Both SDKs drop the ``Faceledger`` response member, so the service repeats what
a caller needs in ``x-faceledger-*`` headers; an investigative purpose is the
sanctioned lower floor, and says so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from faceledger.engine.calibration import compare_threshold, search_threshold

from ..conftest import data_path
from .conftest import start_server

POLICY = """
version = "headers-1"

[purposes.general]
collections = ["*"]

[purposes.recall]
collections = ["people"]
investigative = true
case_required = true
max_expected_false = 10
"""
PEOPLE = ["Anthony_Fauci", "Abel_Pacheco", "Anwar_Ibrahim"]


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("headers") / "data"
    data.mkdir()
    (data / "policy.toml").write_text(POLICY)
    server = start_server(data, workers=1)
    rek = server.client()
    rek.create_collection(CollectionId="people")
    for person in PEOPLE:
        rek.index_faces(CollectionId="people", Image={"Bytes": photo(person, 1)}, ExternalImageId=person, MaxFaces=1)
    yield server
    server.stop()


def raw_member(client, op: str) -> dict:  # type: ignore[no-untyped-def]
    """The ``Faceledger`` member boto3 drops, caught from the raw body by an after-call hook."""
    seen: dict = {}

    def grab(http_response, **_):  # type: ignore[no-untyped-def]
        seen.update(json.loads(http_response.content or b"{}").get("Faceledger", {}))
    client.meta.events.register(f"after-call.rekognition.{op}", grab)
    return seen


def test_boto3_sees_the_raised_threshold_in_headers(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    member = raw_member(rek, "SearchFacesByImage")
    out = rek.search_faces_by_image(CollectionId="people", Image={"Bytes": photo("Anthony_Fauci", 2)},
                                    FaceMatchThreshold=0)
    assert "Faceledger" not in out  # why the headers exist
    h = out["ResponseMetadata"]["HTTPHeaders"]
    assert h["x-faceledger-threshold-raised"] == "true"
    assert h["x-faceledger-threshold-requested"] == "0.0"
    assert float(h["x-faceledger-threshold-applied"]) == pytest.approx(search_threshold(3), abs=1e-4)
    assert h["x-faceledger-gallery-size"] == "3"
    assert float(h["x-faceledger-expected-false-candidates"]) == pytest.approx(0.001, rel=1e-3)
    assert int(h["x-faceledger-search-id"]) == member["SearchId"]
    assert h["x-faceledger-scoring"] == member["ScoreNormalization"]
    assert h["x-faceledger-purpose"] == "general" and "x-faceledger-investigative" not in h
    at_floor = rek.search_faces_by_image(CollectionId="people", Image={"Bytes": photo("Anthony_Fauci", 2)},
                                         FaceMatchThreshold=99)["ResponseMetadata"]["HTTPHeaders"]
    assert at_floor["x-faceledger-threshold-raised"] == "false"
    assert float(at_floor["x-faceledger-threshold-applied"]) == 99.0
    plain = rek.list_collections()["ResponseMetadata"]["HTTPHeaders"]
    assert not [k for k in plain if k.startswith("x-faceledger-")]


def test_javascript_sdk_sees_the_same_headers(srv, js_sdk) -> None:  # type: ignore[no-untyped-def]
    out = js_sdk.call(srv.endpoint, srv.key, srv.secret, "CompareFaces", {
        "SourceImage": {"Bytes": photo("Anthony_Fauci", 1)}, "TargetImage": {"Bytes": photo("Anthony_Fauci", 2)},
        "SimilarityThreshold": 0})
    assert out["status"] == 200, out
    assert len(out["response"]["FaceMatches"]) == 1 and "Faceledger" not in out["response"]
    h = out["headers"]
    assert h["x-faceledger-threshold-raised"] == "true"
    assert float(h["x-faceledger-threshold-applied"]) == pytest.approx(compare_threshold(1e-4), abs=1e-4)
    assert int(h["x-faceledger-search-id"]) > 0 and "x-faceledger-gallery-size" not in h
    search = js_sdk.call(srv.endpoint, srv.key, srv.secret, "SearchFacesByImage", {
        "CollectionId": "people", "Image": {"Bytes": photo("Abel_Pacheco", 2)}, "FaceMatchThreshold": 1})
    assert search["headers"]["x-faceledger-gallery-size"] == "3"
    assert search["headers"]["x-faceledger-threshold-raised"] == "true"
    missing = js_sdk.call(srv.endpoint, srv.key, srv.secret, "DescribeCollection", {"CollectionId": "nobody"})
    assert missing["error"]["name"] == "ResourceNotFoundException" and missing["status"] == 400


def test_investigative_purpose_lowers_the_floor_and_is_recorded(srv, js_sdk) -> None:  # type: ignore[no-untyped-def]
    probe = {"CollectionId": "people", "Image": {"Bytes": photo("Anwar_Ibrahim", 2)}, "FaceMatchThreshold": 0}
    general = js_sdk.call(srv.endpoint, srv.key, srv.secret, "SearchFacesByImage", probe)["headers"]
    unsanctioned = js_sdk.call(srv.endpoint, srv.key, srv.secret, "SearchFacesByImage", probe,
                               headers={"X-Faceledger-Purpose": "recall", "X-Faceledger-Case": "CASE-7"})
    assert unsanctioned["error"]["name"] == "AccessDeniedException"  # the admin key was not issued for it
    made = json.loads(srv.cli("keys", "create", "--role", "searcher", "--purpose", "recall", "--json",
                              check=True).stdout)
    key, secret = made["AccessKeyId"], made["SecretAccessKey"]
    lead = js_sdk.call(srv.endpoint, key, secret, "SearchFacesByImage", probe,
                       headers={"X-Faceledger-Purpose": "recall", "X-Faceledger-Case": "CASE-7"})
    h = lead["headers"]
    assert lead["status"] == 200, lead
    assert h["x-faceledger-investigative"] == "true" and h["x-faceledger-purpose"] == "recall"
    assert float(h["x-faceledger-threshold-applied"]) == pytest.approx(search_threshold(3, 10), abs=1e-4)
    assert float(h["x-faceledger-threshold-applied"]) < float(general["x-faceledger-threshold-applied"]) - 20
    no_case = js_sdk.call(srv.endpoint, key, secret, "SearchFacesByImage", probe,
                          headers={"X-Faceledger-Purpose": "recall"})
    assert no_case["error"]["name"] == "AccessDeniedException"
    shown = json.loads(srv.cli("audit", "show", "--operation", "SearchFacesByImage", "--json",
                               check=True).stdout)["records"]
    record = next(r for r in shown if r["seq"] == int(h["x-faceledger-search-id"]))
    assert record["details"]["investigative"] is True and record["details"]["case"] == "CASE-7"
    assert not any(r["details"].get("investigative") for r in shown if r["details"].get("purpose") == "general")


def two_of(person: str) -> bytes:
    """One photo of ``person`` twice, the second slightly smaller: two strong, not identical, matches."""
    import io

    from PIL import Image

    a = Image.open(io.BytesIO(photo(person, 1))).convert("RGB")
    canvas = Image.new("RGB", (500, 250))
    canvas.paste(a, (0, 0))
    canvas.paste(a.resize((230, 230)), (260, 10))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_matches_beyond_the_calibration_say_so_and_keep_their_order(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    seen: dict = {}

    def grab(http_response, **_):  # type: ignore[no-untyped-def]
        seen.update(json.loads(http_response.content))
    rek.meta.events.register("after-call.rekognition.CompareFaces", grab)
    out = rek.compare_faces(SourceImage={"Bytes": photo("Anthony_Fauci", 1)},
                            TargetImage={"Bytes": two_of("Anthony_Fauci")})
    assert [m["Similarity"] for m in out["FaceMatches"]] == [100.0, 100.0]  # the scale's cap
    raw = seen["FaceMatches"]
    assert [m["Calibration"] for m in raw] == ["capped", "capped"]
    assert raw[0]["Distance"] < raw[1]["Distance"] < 0.32  # the order survives the cap
    assert raw[0]["EstimatedFalseMatchRate"] < raw[1]["EstimatedFalseMatchRate"] < 1e-7
    assert seen["Faceledger"]["BeyondCalibration"] == 2
    assert out["ResponseMetadata"]["HTTPHeaders"]["x-faceledger-beyond-calibration"] == "2"


def test_local_reports_print_plain_text_and_json(srv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    md = srv.cli("report", "transparency", check=True).stdout
    assert "{'" not in md and "Investigative searches (lowered floor, for review only): recall " in md
    assert re.search(r"Requested thresholds raised to the policy floor: (general \d+|recall \d+)", md)
    doc = json.loads(srv.cli("report", "transparency", "--json", check=True).stdout)
    assert doc["investigative_searches"]["recall"] >= 1
    verify = srv.cli("audit", "verify", check=True).stdout
    assert "#None" not in verify and verify.startswith("ledger OK")
    exported = json.loads(srv.cli("audit", "export", str(tmp_path / "l.jsonl"), "--json", check=True).stdout)
    assert exported["Exported"] == len((tmp_path / "l.jsonl").read_text().splitlines()) > 0
    pem = json.loads(srv.cli("audit", "public-key", "--json", check=True).stdout)["PublicKeyPem"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_serve_json_prints_one_object_then_serves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import urllib.request

    from .conftest import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "faceledger.cli.main", "serve", "--json", "--port", str(port),
                             "--data", str(tmp_path / "d"), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["Endpoint"] == f"http://127.0.0.1:{port}" and first["KeyCreated"] is True
        assert first["SecretAccessKey"] and first["AccessKeyId"].startswith("AKIA")
        deadline = time.time() + 120
        while True:  # the details come first, then the port opens
            try:
                with urllib.request.urlopen(first["Endpoint"] + "/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "serve --json did not start serving"
                time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_capped_user_matches_are_ordered_by_distance_not_by_name(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    rek.create_collection(CollectionId="twins")
    faces = rek.index_faces(CollectionId="twins", Image={"Bytes": two_of("Anthony_Fauci")}, MaxFaces=2,
                            QualityFilter="NONE")["FaceRecords"]
    assert len(faces) == 2
    left, right = sorted(faces, key=lambda r: r["Face"]["BoundingBox"]["Left"])
    # "zz" holds the very photo the probe is; "aa" the resized copy: both cap at Similarity 100
    for user, face in (("zz", left), ("aa", right)):
        rek.create_user(CollectionId="twins", UserId=user)
        rek.associate_faces(CollectionId="twins", UserId=user, FaceIds=[face["Face"]["FaceId"]])
    seen: dict = {}

    def grab(http_response, **_):  # type: ignore[no-untyped-def]
        seen.update(json.loads(http_response.content))
    rek.meta.events.register("after-call.rekognition.SearchUsersByImage", grab)
    out = rek.search_users_by_image(CollectionId="twins", Image={"Bytes": photo("Anthony_Fauci", 1)})
    assert [m["Similarity"] for m in out["UserMatches"]] == [100.0, 100.0]
    assert [m["User"]["UserId"] for m in out["UserMatches"]] == ["zz", "aa"]
    assert seen["UserMatches"][0]["Distance"] < seen["UserMatches"][1]["Distance"]
    assert seen["Faceledger"]["BeyondCalibration"] == 2
