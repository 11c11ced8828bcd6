"""Collections are pinned to their pack: two real model versions in one data directory.

The built-in default (dlib's ResNet on dlib's 5 points, FaceModelVersion 1.1) and the
opt-in mesh pipeline (the same network on FaceMesh-aligned chips, 2.1: its own
calibration table) are two real packs. A service whose default is one of them must
compute and score a collection of the other with that collection's pack, and refuse
what it cannot do with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import MODEL_VERSION, EngineSettings
from faceledger.engine import mediapipe_models as mm
from faceledger.engine.calibration import load_table
from faceledger.engine.registry import MESH_MODEL_VERSION
from faceledger.errors import ModelFileError, PackUnavailableError
from faceledger.service import create
from faceledger.service.search import search_vector
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog

from ..conftest import data_path
from .conftest import principal

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")


def open_service(data_dir, landmarker: str):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=data_dir, landmarker=landmarker, score_normalization="off")
    catalog, index = type_service().open_store(settings)
    return create(settings, catalog, index, EnginePool(EngineSettings(landmarker=landmarker)))


def type_service():  # type: ignore[no-untyped-def]
    from faceledger.service.core import Service

    return Service


def run(svc, op: str, **params):  # type: ignore[no-untyped-def]
    return svc.dispatch(op, params, principal("admin"), {"request_id": op})


def face(name: str, n: int) -> bytes:
    return data_path("lfw_dev", name, f"{name}_{n:04d}.jpg").read_bytes()


@pytest.fixture
def data_dir(tmp_path):  # type: ignore[no-untyped-def]
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_a_collection_is_indexed_and_searched_with_its_own_pack(data_dir) -> None:  # type: ignore[no-untyped-def]
    old = open_service(data_dir, "dlib5")
    try:
        assert run(old, "CreateCollection", CollectionId="dlib")["FaceModelVersion"] == "1.1"
        first = run(old, "IndexFaces", CollectionId="dlib", Image={"Bytes": face("Aaron_Peirsol", 1)})
        expected = old.catalog.iter_vectors("dlib")[1]
    finally:
        old.close()
    svc = open_service(data_dir, "facemesh")  # the default is now the mesh pack
    try:
        assert svc.packs.default.model_version == MESH_MODEL_VERSION
        assert run(svc, "CreateCollection", CollectionId="mesh")["FaceModelVersion"] == "2.1"
        again = run(svc, "IndexFaces", CollectionId="dlib", Image={"Bytes": face("Aaron_Peirsol", 1)})
        assert again["FaceModelVersion"] == "1.1"
        assert again["FaceRecords"][0]["Face"]["IndexFacesModelVersion"] == "1.1"
        ids, vectors = svc.catalog.iter_vectors("dlib")
        new_id = again["FaceRecords"][0]["Face"]["FaceId"]
        # the same image through the dlib pack gives the same descriptor, bit for bit
        np.testing.assert_array_equal(vectors[ids.index(new_id)], expected[0])
        meshed = run(svc, "IndexFaces", CollectionId="mesh", Image={"Bytes": face("Aaron_Peirsol", 1)})
        assert meshed["FaceModelVersion"] == "2.1"
        mesh_vec = svc.catalog.iter_vectors("mesh")[1][0]
        assert not np.array_equal(mesh_vec, expected[0])  # a different pack: different vectors

        hit = run(svc, "SearchFacesByImage", CollectionId="dlib", Image={"Bytes": face("Aaron_Peirsol", 2)})
        assert hit["FaceModelVersion"] == "1.1"
        assert {m["Face"]["FaceId"] for m in hit["FaceMatches"]} == {first["FaceRecords"][0]["Face"]["FaceId"],
                                                                     new_id}
        assert hit["Faceledger"]["CalibrationVersion"].startswith(MODEL_VERSION + "/")
        mhit = run(svc, "SearchFacesByImage", CollectionId="mesh", Image={"Bytes": face("Aaron_Peirsol", 2)})
        assert mhit["FaceModelVersion"] == "2.1"
        assert mhit["Faceledger"]["CalibrationVersion"].startswith(MESH_MODEL_VERSION + "/")
        by_id = run(svc, "SearchFaces", CollectionId="dlib", FaceId=new_id)
        assert by_id["FaceModelVersion"] == "1.1" and len(by_id["FaceMatches"]) == 1

        records = {r["operation"] + ":" + str(r["collection_id"]): r["details"]
                   for r in svc.ledger.iter_all() if r["operation"] in ("IndexFaces", "SearchFacesByImage")}
        assert records["IndexFaces:dlib"]["model_version"] == MODEL_VERSION
        assert records["IndexFaces:mesh"]["model_version"] == MESH_MODEL_VERSION
        assert records["SearchFacesByImage:dlib"]["calibration"].startswith(MODEL_VERSION + "/")
        compared = run(svc, "CompareFaces", SourceImage={"Bytes": face("Aaron_Peirsol", 1)},
                       TargetImage={"Bytes": face("Aaron_Peirsol", 2)})
        assert compared["Faceledger"]["CalibrationVersion"].startswith(MESH_MODEL_VERSION + "/")
    finally:
        svc.close()


def test_a_collection_of_a_pack_not_installed_is_refused_with_its_name(data_dir) -> None:  # type: ignore[no-untyped-def]
    with Catalog.open(data_dir) as catalog, catalog.transaction() as tx:
        catalog.create_collection(tx, "arc", "acme-arcface-3", {}, 1.0, 512, "cosine")
        catalog.create_collection(tx, "odd", MODEL_VERSION, {}, 1.0, 192, "cosine")
    svc = open_service(data_dir, "dlib5")
    try:
        for op, extra in (("IndexFaces", {"Image": {"Bytes": face("Aaron_Peirsol", 1)}}),
                          ("SearchFacesByImage", {"Image": {"Bytes": face("Aaron_Peirsol", 1)}}),
                          ("SearchUsers", {"UserId": "u1"})):
            with pytest.raises(PackUnavailableError, match="acme-arcface-3.*not installed"):
                run(svc, op, CollectionId="arc", **extra)
        with pytest.raises(PackUnavailableError, match="192-d cosine vectors"):
            run(svc, "IndexFaces", CollectionId="odd", Image={"Bytes": face("Aaron_Peirsol", 1)})
        assert svc.catalog.get_collection("arc")["face_count"] == 0
        assert run(svc, "DescribeCollection", CollectionId="arc")["FaceModelVersion"] == "acme-arcface-3"
    finally:
        svc.close()


def test_a_probe_of_another_pack_is_never_compared(data_dir) -> None:  # type: ignore[no-untyped-def]
    svc = open_service(data_dir, "dlib5")
    try:
        run(svc, "CreateCollection", CollectionId="c")
        run(svc, "IndexFaces", CollectionId="c", Image={"Bytes": face("Aaron_Peirsol", 1)})
        threshold = svc.search_threshold(None, 1)
        with pytest.raises(PackUnavailableError, match="192-d probe.*never compared"):
            search_vector(svc, svc.packs.default, "c", np.ones(192, np.float32), threshold, 5)
    finally:
        svc.close()


def test_a_calibration_table_of_another_pack_is_refused() -> None:
    mesh = load_table(MESH_MODEL_VERSION)
    with pytest.raises(ModelFileError, match=f"measured on {MESH_MODEL_VERSION}.*cannot score {MODEL_VERSION}"):
        mesh.check_for(MODEL_VERSION, 128, "euclidean")
    with pytest.raises(ModelFileError, match="128-d, euclidean.*192-d, cosine"):
        load_table(MODEL_VERSION).check_for(MODEL_VERSION, 192, "cosine")
    assert load_table(MODEL_VERSION).check_for(MODEL_VERSION, 128, "euclidean").dim == 128
