"""A real server on the MediaPipe front end, driven by boto3 (FACELEDGER_DETECTOR / FACELEDGER_LANDMARKER)."""

from __future__ import annotations

import pytest

from faceledger.engine import mediapipe_models as mm

from ..conftest import data_path
from .conftest import start_server

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")


@pytest.fixture(scope="module")
def mesh_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path_factory.mktemp("mesh") / "data", workers=1,
                       extra_env={"FACELEDGER_DETECTOR": "blazeface", "FACELEDGER_LANDMARKER": "facemesh"})
    yield srv
    srv.stop()


def test_boto3_sees_the_mesh_pipeline(mesh_server) -> None:  # type: ignore[no-untyped-def]
    rek = mesh_server.client()
    photo = data_path("group_photos", "blazeface_4faces.png").read_bytes()
    faces = rek.detect_faces(Image={"Bytes": photo}, Attributes=["ALL"])["FaceDetails"]
    assert len(faces) == 4
    assert all(len(f["Landmarks"]) == 30 and "EyeDirection" in f for f in faces)
    rek.create_collection(CollectionId="small")
    out = rek.index_faces(CollectionId="small", Image={"Bytes": photo})
    assert out["FaceModelVersion"] == "2.1" and out["FaceRecords"] == []
    assert [("SMALL_BOUNDING_BOX" in u["Reasons"]) for u in out["UnindexedFaces"]] == [True] * 4
    two = data_path("group_photos", "face_recognition_two_people.jpg").read_bytes()
    plain = rek.detect_faces(Image={"Bytes": two})["FaceDetails"]
    assert len(plain) == 2
    assert all({m["Type"] for m in f["Landmarks"]} == {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}
               for f in plain)
