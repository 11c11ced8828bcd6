"""The calibration gate through a real server and boto3: a pack without its table detects but never matches.

The server runs FACELEDGER_MODEL=mobilefacenet-ms1m (the shared test-only
network, installed into the data dir's model store). Before calibration,
CreateCollection, IndexFaces, SearchFaces*, CompareFaces are refused with
ModelNotCalibratedException; after `eval calibrate --model` (on a small lfw_dev
subset, raw scores) the same calls work and scores come from the pack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import data_path
from tests.e2e.conftest import start_server
from tests.packs_helper import NAME, calibrate_small, cli, make_pack

pytestmark = pytest.mark.data

ENV = {"FACELEDGER_MODEL": NAME, "FACELEDGER_SCORE_NORMALIZATION": "off"}


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_refused_before_calibration_and_works_after(tmp_path: Path) -> None:
    lfw = data_path("lfw_dev")
    a, b = (p.read_bytes() for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2])
    other = sorted((lfw / "Adrien_Brody").glob("*.jpg"))[0].read_bytes()
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p")), data=data).returncode == 0

    srv = start_server(data, workers=1, extra_env=ENV)
    try:
        rek = srv.client()
        status = json.loads(srv.cli("status", "--json", check=True).stdout)
        pack = status["ModelPack"]
        assert (pack["Name"], pack["Dimension"], pack["Metric"], pack["Calibrated"]) == (NAME, 192, "cosine", False)
        assert "non-commercial" in pack["Licences"]["TrainingData"] and pack["Licences"]["Weights"]
        assert status["ModelVersion"] == f"{NAME}-1"
        with pytest.raises(ClientError) as err:
            rek.create_collection(CollectionId="c1")
        assert _code(err) == "ModelNotCalibratedException" and "eval calibrate" in str(err.value)
        with pytest.raises(ClientError) as err:
            rek.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b})
        assert _code(err) == "ModelNotCalibratedException"
        with pytest.raises(ClientError) as err:
            rek.search_faces_by_image(CollectionId="c1", Image={"Bytes": a})
        assert _code(err) == "ModelNotCalibratedException"
        with pytest.raises(ClientError) as err:
            rek.index_faces(CollectionId="c1", Image={"Bytes": a})
        assert _code(err) == "ModelNotCalibratedException"
        assert len(rek.detect_faces(Image={"Bytes": a})["FaceDetails"]) == 1  # detection needs no table
        assert rek.list_collections()["CollectionIds"] == []  # nothing was half-created
    finally:
        srv.stop()

    r = calibrate_small(data)
    assert r.returncode == 0, r.stderr
    srv = start_server(data, workers=1, extra_env=ENV)
    try:
        rek = srv.client()
        made = rek.create_collection(CollectionId="c1")
        assert made["FaceModelVersion"] == f"{NAME}-1"
        same = rek.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b}, SimilarityThreshold=0)
        differ = rek.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": other}, SimilarityThreshold=0)
        s_same = same["FaceMatches"][0]["Similarity"]
        s_diff = differ["FaceMatches"][0]["Similarity"] if differ["FaceMatches"] else 0.0
        assert s_same > 50 > s_diff, (s_same, s_diff)
        status = json.loads(srv.cli("status", "--json", check=True).stdout)
        assert status["ModelPack"]["Calibrated"] is True and status["CalibrationVersion"] == f"{NAME}-1/1"
    finally:
        srv.stop()
    # the collection pins the pack: the CLI (through the service layer) refuses to remove it
    gone = cli("models", "remove", NAME, data=data)
    assert gone.returncode == 12 and "c1" in gone.stderr


def test_index_and_search_with_the_pack(tmp_path: Path) -> None:
    lfw = data_path("lfw_dev")
    a, b = (p.read_bytes() for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2])
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p")), data=data).returncode == 0
    assert calibrate_small(data).returncode == 0
    srv = start_server(data, workers=1, extra_env=ENV)
    try:
        rek = srv.client()
        rek.create_collection(CollectionId="c1")
        rek.index_faces(CollectionId="c1", Image={"Bytes": a}, ExternalImageId="powell")
        hits = rek.search_faces_by_image(CollectionId="c1", Image={"Bytes": b}, FaceMatchThreshold=0)
        assert hits["FaceMatches"][0]["Face"]["ExternalImageId"] == "powell"
        assert hits["FaceModelVersion"] == f"{NAME}-1"
    finally:
        srv.stop()


def test_collection_pinned_to_an_installed_pack_works_when_the_default_is_built_in(tmp_path: Path) -> None:
    """FACELEDGER_MODEL unset: a collection made under the pack still indexes and searches with that pack."""
    lfw = data_path("lfw_dev")
    a, b, c = (p.read_bytes() for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:3])
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p")), data=data).returncode == 0
    assert calibrate_small(data).returncode == 0
    srv = start_server(data, workers=1, extra_env=ENV)
    try:
        srv.client().create_collection(CollectionId="c1")
    finally:
        srv.stop()
    srv = start_server(data, workers=1, extra_env={"FACELEDGER_SCORE_NORMALIZATION": "off"})
    try:
        rek = srv.client()
        assert rek.describe_collection(CollectionId="c1")["FaceModelVersion"] == f"{NAME}-1"
        made = rek.create_collection(CollectionId="c2")
        assert made["FaceModelVersion"] != f"{NAME}-1"  # new collections take the built-in default
        rek.index_faces(CollectionId="c1", Image={"Bytes": a}, ExternalImageId="powell")
        rek.index_faces(CollectionId="c2", Image={"Bytes": a}, ExternalImageId="powell2")
        hits = rek.search_faces_by_image(CollectionId="c1", Image={"Bytes": b}, FaceMatchThreshold=0)
        assert hits["FaceMatches"][0]["Face"]["ExternalImageId"] == "powell"
        assert hits["FaceModelVersion"] == f"{NAME}-1"
        face_id = hits["FaceMatches"][0]["Face"]["FaceId"]
        again = rek.search_faces(CollectionId="c1", FaceId=face_id, FaceMatchThreshold=0)
        assert again["FaceModelVersion"] == f"{NAME}-1"
        hits2 = rek.search_faces_by_image(CollectionId="c2", Image={"Bytes": c}, FaceMatchThreshold=0)
        assert hits2["FaceMatches"][0]["Face"]["ExternalImageId"] == "powell2"
        assert hits2["FaceModelVersion"] != f"{NAME}-1"
    finally:
        srv.stop()
    srv = start_server(data, workers=1, extra_env=ENV)  # and the other way: the pack the default, c2 built in
    try:
        hits2 = srv.client().search_faces_by_image(CollectionId="c2", Image={"Bytes": c}, FaceMatchThreshold=0)
        assert hits2["FaceMatches"][0]["Face"]["ExternalImageId"] == "powell2"
        assert hits2["FaceModelVersion"] != f"{NAME}-1"
    finally:
        srv.stop()


def test_an_uncalibrated_default_leaves_collections_of_calibrated_packs_working(tmp_path: Path) -> None:
    """The gate refuses what would score with the uncalibrated default, not a collection pinned to the built-in pack."""
    lfw = data_path("lfw_dev")
    a, b = (p.read_bytes() for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[:2])
    data = tmp_path / "data"
    assert cli("models", "install", str(make_pack(tmp_path / "p")), data=data).returncode == 0  # not calibrated
    srv = start_server(data, workers=1, extra_env={"FACELEDGER_SCORE_NORMALIZATION": "off"})
    try:
        rek = srv.client()
        rek.create_collection(CollectionId="builtin")
        rek.index_faces(CollectionId="builtin", Image={"Bytes": a}, ExternalImageId="powell")
    finally:
        srv.stop()
    srv = start_server(data, workers=1, extra_env=ENV)  # the default is now the pack without its tables
    try:
        rek = srv.client()
        with pytest.raises(ClientError) as made:
            rek.create_collection(CollectionId="new")
        assert _code(made) == "ModelNotCalibratedException"
        with pytest.raises(ClientError) as compared:
            rek.compare_faces(SourceImage={"Bytes": a}, TargetImage={"Bytes": b})
        assert _code(compared) == "ModelNotCalibratedException"
        hits = rek.search_faces_by_image(CollectionId="builtin", Image={"Bytes": b})
        assert hits["FaceMatches"][0]["Face"]["ExternalImageId"] == "powell"
        assert hits["FaceModelVersion"] != f"{NAME}-1"
    finally:
        srv.stop()
