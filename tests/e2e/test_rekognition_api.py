"""The service end to end: real server process, real models, real boto3 and AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import both_stores

pytestmark = both_stores  # the main boto3 and AWS CLI flow runs on SQLite and on PostgreSQL (#14)

PEOPLE = ["Anthony_Fauci", "Abel_Pacheco", "Anwar_Ibrahim", "Barbara_Brezigar"]


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def enrolled(server):  # type: ignore[no-untyped-def]
    rek = server.client()
    rek.create_collection(CollectionId="people")
    ids = {}
    for person in PEOPLE:
        out = rek.index_faces(CollectionId="people", Image={"Bytes": photo(person, 1)}, ExternalImageId=person,
                              MaxFaces=1)
        ids[person] = out["FaceRecords"][0]["Face"]["FaceId"]
    return ids


def test_mated_probe_is_found_and_stranger_is_not(server, enrolled, grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    rek = server.client()
    out = rek.search_faces_by_image(CollectionId="people", Image={"Bytes": photo("Anthony_Fauci", 2)})
    assert out["FaceMatches"][0]["Face"]["ExternalImageId"] == "Anthony_Fauci"
    assert out["FaceMatches"][0]["Similarity"] > 60
    stranger = rek.search_faces_by_image(CollectionId="people", Image={"Bytes": grace_hopper_bytes})
    assert stranger["FaceMatches"] == []
    by_face = rek.search_faces(CollectionId="people", FaceId=enrolled["Abel_Pacheco"])
    assert by_face["SearchedFaceId"] == enrolled["Abel_Pacheco"]


def test_detect_and_compare(server, grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    rek = server.client()
    faces = rek.detect_faces(Image={"Bytes": grace_hopper_bytes}, Attributes=["ALL"])["FaceDetails"]
    assert len(faces) == 1 and "AgeRange" not in faces[0] and "Emotions" not in faces[0]
    assert {lm["Type"] for lm in faces[0]["Landmarks"]} >= {"eyeLeft", "eyeRight", "nose"}
    same = rek.compare_faces(SourceImage={"Bytes": photo("Anthony_Fauci", 1)},
                             TargetImage={"Bytes": photo("Anthony_Fauci", 2)})
    assert len(same["FaceMatches"]) == 1
    other = rek.compare_faces(SourceImage={"Bytes": photo("Anthony_Fauci", 1)},
                              TargetImage={"Bytes": grace_hopper_bytes}, SimilarityThreshold=0)
    assert other["FaceMatches"] == [] and len(other["UnmatchedFaces"]) == 1


def test_users_pagination_and_describe(server, enrolled) -> None:  # type: ignore[no-untyped-def]
    rek = server.client()
    rek.create_user(CollectionId="people", UserId="abel")
    extra = rek.index_faces(CollectionId="people", Image={"Bytes": photo("Abel_Pacheco", 2)})
    new_id = extra["FaceRecords"][0]["Face"]["FaceId"]
    assoc = rek.associate_faces(CollectionId="people", UserId="abel",
                                FaceIds=[enrolled["Abel_Pacheco"], new_id])
    assert len(assoc["AssociatedFaces"]) == 2 and assoc["UserStatus"] == "ACTIVE"
    found = rek.search_users_by_image(CollectionId="people", Image={"Bytes": photo("Abel_Pacheco", 3)})
    assert found["UserMatches"][0]["User"]["UserId"] == "abel"
    pages = list(rek.get_paginator("list_faces").paginate(CollectionId="people", PaginationConfig={"PageSize": 2}))
    assert len(pages) >= 3 and sum(len(p["Faces"]) for p in pages) == len(PEOPLE) + 1
    desc = rek.describe_collection(CollectionId="people")
    assert desc["FaceCount"] == len(PEOPLE) + 1 and desc["CollectionARN"].endswith("collection/people")
    assert [u["UserId"] for u in rek.list_users(CollectionId="people")["Users"]] == ["abel"]


def test_error_paths(server) -> None:  # type: ignore[no-untyped-def]
    rek = server.client(retries={"max_attempts": 1})
    with pytest.raises(ClientError) as e:
        rek.describe_collection(CollectionId="nope")
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        rek.create_collection(CollectionId="bad id!")
    assert code(e) == "InvalidParameterException"
    rek.create_collection(CollectionId="dup")
    with pytest.raises(ClientError) as e:
        rek.create_collection(CollectionId="dup")
    assert code(e) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as e:
        rek.detect_faces(Image={"Bytes": b"\xff\xd8\xff" + os.urandom(2000)})
    assert code(e) == "InvalidImageFormatException"
    with pytest.raises(ClientError) as e:
        rek.detect_faces(Image={"Bytes": b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024 + 10)})
    assert code(e) == "ImageTooLargeException"
    with pytest.raises(ClientError) as e:
        rek.search_faces_by_image(CollectionId="dup", Image={"Bytes": _blank_png()})
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        server.client(secret="x" * 40).list_collections()
    assert code(e) == "InvalidSignatureException"
    with pytest.raises(ClientError) as e:
        server.client(key="AKIAAAAAAAAAAAAAAAAA").list_collections()
    assert code(e) == "UnrecognizedClientException"


def _blank_png() -> bytes:
    import numpy as np

    from faceledger.testing import png_bytes

    return png_bytes(np.full((120, 160, 3), 200, np.uint8))


def test_roles_and_keys_cli(server) -> None:  # type: ignore[no-untyped-def]
    made = server.cli("keys", "create", "--role", "searcher", "--data", str(server.data_dir), "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    searcher = server.client(key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert "CollectionIds" in searcher.list_collections()
    with pytest.raises(ClientError) as e:
        searcher.create_collection(CollectionId="forbidden")
    assert code(e) == "AccessDeniedException"
    server.cli("keys", "revoke", key["AccessKeyId"], "--data", str(server.data_dir), check=True)
    with pytest.raises(ClientError) as e:
        searcher.list_collections()
    assert code(e) == "UnrecognizedClientException"


def test_aws_cli(server) -> None:  # type: ignore[no-untyped-def]
    import shutil

    aws = shutil.which("aws", path=os.path.dirname(os.sys.executable)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.key, "AWS_SECRET_ACCESS_KEY": server.secret,
           "AWS_DEFAULT_REGION": "us-east-1"}
    ok = subprocess.run([aws, "rekognition", "list-collections", "--endpoint-url", server.endpoint],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "CollectionIds" in json.loads(ok.stdout)
    bad = subprocess.run([aws, "rekognition", "describe-collection", "--collection-id", "nope",
                          "--endpoint-url", server.endpoint], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 255 and "ResourceNotFoundException" in bad.stderr


def test_concurrent_clients_index_and_search(server) -> None:  # type: ignore[no-untyped-def]
    rek = server.client()
    rek.create_collection(CollectionId="busy")
    seed = rek.index_faces(CollectionId="busy", Image={"Bytes": photo("Anwar_Ibrahim", 1)}, ExternalImageId="anwar")
    errors: list[BaseException] = []
    found: list[str] = []

    def worker(i: int) -> None:
        try:
            c = server.client(retries={"max_attempts": 10, "mode": "standard"})
            if i % 2 == 0:
                c.index_faces(CollectionId="busy", Image={"Bytes": photo(PEOPLE[i % 4], 1)},
                              ExternalImageId=f"w{i}")
            out = c.search_faces_by_image(CollectionId="busy", Image={"Bytes": photo("Anwar_Ibrahim", 2)})
            found.append(out["FaceMatches"][0]["Face"]["ExternalImageId"] if out["FaceMatches"] else "")
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(f in ("anwar", "w2", "w6") for f in found) and len(found) == 8
    assert rek.describe_collection(CollectionId="busy")["FaceCount"] == 1 + 4
    assert seed["FaceRecords"]
