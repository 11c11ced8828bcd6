"""Pinning and migration end to end: real servers, boto3, the CLI, two real packs.

A server whose default is dlib's 5-point pipeline (1.1) enrols a collection from a
bucket; restarted with the FaceMesh pipeline (2.1) as its default, it still indexes
and searches that collection with 1.1, creates new collections with 2.1, and
`faceledger collections migrate` moves the old one over.
"""

from __future__ import annotations

import json
import shutil

import pytest

from faceledger.engine import mediapipe_models as mm

from ..conftest import data_path
from .conftest import start_server

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")
PEOPLE = ("Abel_Pacheco", "Anwar_Ibrahim", "Aaron_Peirsol")


def test_a_collection_keeps_its_pack_across_a_default_change_and_migrates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bucket = tmp_path / "data" / "buckets" / "photos"
    bucket.mkdir(parents=True)
    for person in PEOPLE:
        shutil.copy(data_path("lfw_dev", person, f"{person}_0001.jpg"), bucket / f"{person}.jpg")
    probe = data_path("lfw_dev", "Abel_Pacheco", "Abel_Pacheco_0002.jpg").read_bytes()
    srv = start_server(tmp_path / "data", workers=1)
    try:
        rek = srv.client()
        assert rek.create_collection(CollectionId="old")["FaceModelVersion"] == "1.1"
        for person in PEOPLE:
            rek.index_faces(CollectionId="old", ExternalImageId=person,
                            Image={"S3Object": {"Bucket": "photos", "Name": f"{person}.jpg"}})
    finally:
        srv.stop()
    srv = start_server(tmp_path / "data", workers=1, extra_env={"FACELEDGER_LANDMARKER": "facemesh"})
    try:
        rek = srv.client()
        assert rek.create_collection(CollectionId="new")["FaceModelVersion"] == "2.1"
        hit = rek.search_faces_by_image(CollectionId="old", Image={"Bytes": probe})
        assert hit["FaceModelVersion"] == "1.1"
        assert [m["Face"]["ExternalImageId"] for m in hit["FaceMatches"]] == ["Abel_Pacheco"]
        walk_in = rek.index_faces(CollectionId="old", ExternalImageId="walk-in", Image={"Bytes": probe})
        assert walk_in["FaceModelVersion"] == "1.1"
        lost = walk_in["FaceRecords"][0]["Face"]["FaceId"]

        blocked = srv.cli("collections", "migrate", "old", "--model", "dlib-resnet128-mesh5-mirror-1", "--json")
        assert blocked.returncode == 12, blocked.stderr
        out = json.loads(blocked.stdout)
        assert [(m["FaceId"], m["ExternalImageId"]) for m in out["MustReEnroll"]] == [(lost, "walk-in")]
        assert rek.describe_collection(CollectionId="old")["FaceModelVersion"] == "1.1"

        rek.delete_faces(CollectionId="old", FaceIds=[lost])
        done = srv.cli("collections", "migrate", "old", "--model", "dlib-resnet128-mesh5-mirror-1")
        assert done.returncode == 0, done.stderr
        assert "swapped over" in done.stdout
        assert rek.describe_collection(CollectionId="old")["FaceModelVersion"] == "2.1"
        hit = rek.search_faces_by_image(CollectionId="old", Image={"Bytes": probe})
        assert hit["FaceModelVersion"] == "2.1"
        assert [m["Face"]["ExternalImageId"] for m in hit["FaceMatches"]] == ["Abel_Pacheco"]
        verify = srv.cli("audit", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout
    finally:
        srv.stop()
