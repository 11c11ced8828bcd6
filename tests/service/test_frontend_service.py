"""The service over the MediaPipe front end: small faces found and refused with the right reason."""

from __future__ import annotations

import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.engine import mediapipe_models as mm
from faceledger.service import create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeEmbedder

from ..conftest import data_path
from .conftest import principal

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")


@pytest.fixture
def mesh_service(tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", detector="blazeface", landmarker="facemesh")
    settings.data_dir.mkdir()
    es = EngineSettings(detector="blazeface", landmarker="facemesh")
    engine = Engine(es, embedder=FakeEmbedder())
    svc = create(settings, Catalog.open(settings.data_dir), VectorIndex(), EnginePool(es, engine=engine))
    yield svc
    svc.close()


def run(svc, op: str, **params):  # type: ignore[no-untyped-def]
    return svc.dispatch(op, params, principal("admin"), {"request_id": "r1"})


def test_twenty_pixel_faces_are_found_and_left_unindexed_as_small(mesh_service) -> None:  # type: ignore[no-untyped-def]
    photo = data_path("group_photos", "blazeface_4faces.png").read_bytes()
    run(mesh_service, "CreateCollection", CollectionId="c")
    out = run(mesh_service, "IndexFaces", CollectionId="c", Image={"Bytes": photo})  # AUTO
    assert out["FaceModelVersion"] == "2.1" and out["FaceRecords"] == []
    assert len(out["UnindexedFaces"]) == 4
    assert all("SMALL_BOUNDING_BOX" in u["Reasons"] for u in out["UnindexedFaces"])


def test_detect_faces_default_and_all(mesh_service, grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    (plain,) = run(mesh_service, "DetectFaces", Image={"Bytes": grace_hopper_bytes})["FaceDetails"]
    assert {m["Type"] for m in plain["Landmarks"]} == {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "nose"}
    assert "EyesOpen" not in plain and "EyeDirection" not in plain
    (full,) = run(mesh_service, "DetectFaces", Image={"Bytes": grace_hopper_bytes}, Attributes=["ALL"])["FaceDetails"]
    assert len(full["Landmarks"]) == 30
    for key in ("EyesOpen", "MouthOpen", "EyeDirection"):
        assert 0 <= full[key]["Confidence"] <= 100
    for banned in ("Smile", "Eyeglasses", "Sunglasses", "FaceOccluded", "AgeRange", "Gender", "Emotions"):
        assert banned not in full


@pytest.fixture
def default_service(tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    es = EngineSettings()
    svc = create(settings, Catalog.open(settings.data_dir), VectorIndex(),
                 EnginePool(es, engine=Engine(es, embedder=FakeEmbedder())))
    yield svc
    svc.close()


def test_default_settings_report_mesh_landmarks_and_small_faces(default_service, grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    (plain,) = run(default_service, "DetectFaces", Image={"Bytes": grace_hopper_bytes})["FaceDetails"]
    assert [m["Type"] for m in plain["Landmarks"]] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    (full,) = run(default_service, "DetectFaces", Image={"Bytes": grace_hopper_bytes},
                  Attributes=["ALL"])["FaceDetails"]
    assert len(full["Landmarks"]) == 30
    assert all("Confidence" in full[k] for k in ("EyesOpen", "MouthOpen", "EyeDirection"))
    photo = data_path("group_photos", "blazeface_4faces.png").read_bytes()
    run(default_service, "CreateCollection", CollectionId="c")
    out = run(default_service, "IndexFaces", CollectionId="c", Image={"Bytes": photo})
    assert out["FaceModelVersion"] == "1.1" and out["FaceRecords"] == []  # the default model version, unchanged
    assert [("SMALL_BOUNDING_BOX" in u["Reasons"]) for u in out["UnindexedFaces"]] == [True] * 4
