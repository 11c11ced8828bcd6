"""Default settings through a real server: AWS's landmarks and attributes, small faces (boto3 and the JS SDK v3).

No FACELEDGER_DETECTOR / FACELEDGER_LANDMARKER: dlib's HOG finds and aligns
the faces, FaceMesh places the reported landmarks, BlazeFace finds the faces
HOG's window is too large for.
"""

from __future__ import annotations

import pytest

from faceledger.engine import EngineSettings
from faceledger.engine import mediapipe_models as mm
from faceledger.engine.registry import wire_version

from ..conftest import data_path
from .conftest import start_server

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")

DEFAULT_FIVE = {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}
ATTRIBUTES = ("EyesOpen", "MouthOpen", "EyeDirection")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):  # type: ignore[no-untyped-def]
    server = start_server(tmp_path_factory.mktemp("defaults") / "data", workers=1)
    yield server
    server.stop()


def two_people() -> bytes:
    return data_path("group_photos", "face_recognition_two_people.jpg").read_bytes()


def four_small() -> bytes:
    return data_path("group_photos", "blazeface_4faces.png").read_bytes()


def check_faces(plain: list[dict], full: list[dict]) -> None:
    assert len(plain) == len(full) == 2
    for face in plain:
        assert {m["Type"] for m in face["Landmarks"]} == DEFAULT_FIVE
        assert not any(key in face for key in ATTRIBUTES)
        assert all(0 <= m["X"] <= 1 and 0 <= m["Y"] <= 1 for m in face["Landmarks"])
    for face in full:
        assert len(face["Landmarks"]) == 30
        for key in ATTRIBUTES:
            assert 0 <= face[key]["Confidence"] <= 100, key
        assert isinstance(face["EyesOpen"]["Value"], bool) and isinstance(face["MouthOpen"]["Value"], bool)
        assert set(face["EyeDirection"]) == {"Yaw", "Pitch", "Confidence"}
        assert "AgeRange" not in face and "Gender" not in face


def test_boto3_default_landmarks_attributes_and_small_faces(srv) -> None:  # type: ignore[no-untyped-def]
    rek = srv.client()
    plain = rek.detect_faces(Image={"Bytes": two_people()})["FaceDetails"]
    full = rek.detect_faces(Image={"Bytes": two_people()}, Attributes=["ALL"])["FaceDetails"]
    check_faces(plain, full)
    small = rek.detect_faces(Image={"Bytes": four_small()})["FaceDetails"]
    assert len(small) == 4
    rek.create_collection(CollectionId="small")
    out = rek.index_faces(CollectionId="small", Image={"Bytes": four_small()})
    assert out["FaceModelVersion"] == wire_version(EngineSettings().model_version)  # the default, unchanged
    assert out["FaceRecords"] == []
    assert [("SMALL_BOUNDING_BOX" in u["Reasons"]) for u in out["UnindexedFaces"]] == [True] * 4
    # the larger faces are indexed as before
    two = rek.index_faces(CollectionId="small", Image={"Bytes": two_people()})
    assert len(two["FaceRecords"]) == 2
    assert all({m["Type"] for m in r["FaceDetail"]["Landmarks"]} == DEFAULT_FIVE for r in two["FaceRecords"])


def test_javascript_sdk_sees_the_same(srv, js_sdk) -> None:  # type: ignore[no-untyped-def]
    plain = js_sdk.call(srv.endpoint, srv.key, srv.secret, "DetectFaces", {"Image": {"Bytes": two_people()}})
    full = js_sdk.call(srv.endpoint, srv.key, srv.secret, "DetectFaces",
                       {"Image": {"Bytes": two_people()}, "Attributes": ["ALL"]})
    assert plain["status"] == full["status"] == 200
    check_faces(plain["response"]["FaceDetails"], full["response"]["FaceDetails"])
    small = js_sdk.call(srv.endpoint, srv.key, srv.secret, "DetectFaces", {"Image": {"Bytes": four_small()}})
    assert len(small["response"]["FaceDetails"]) == 4
