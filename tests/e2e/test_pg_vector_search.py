"""pgvector search in the service (issue #14): several API processes on one PostgreSQL, and the ANN hook."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from botocore.exceptions import ClientError

from ..conftest import data_path
from .conftest import start_server


def photo(person: str, n: int) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


def headers(out: dict) -> dict[str, str]:
    return out["ResponseMetadata"]["HTTPHeaders"]


def details(url: str, seq: str) -> dict:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT details FROM ledger WHERE seq = %s", (int(seq),)).fetchone()
    assert row is not None
    return json.loads(row[0])


def test_a_face_indexed_on_one_server_is_found_by_another_at_once(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"  # one data directory: the two share master.key and page.key
    first = start_server(data, workers=1, store=pg_url)
    second = start_server(data, workers=1, store=pg_url)
    try:
        a, b = first.client(), second.client()
        a.create_collection(CollectionId="shared")
        face_id = a.index_faces(CollectionId="shared", Image={"Bytes": photo("Anthony_Fauci", 1)},
                                ExternalImageId="Anthony_Fauci", MaxFaces=1)["FaceRecords"][0]["Face"]["FaceId"]
        out = b.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo("Anthony_Fauci", 2)})
        assert [m["Face"]["FaceId"] for m in out["FaceMatches"]] == [face_id]
        # an exact search adds nothing to the response or the ledger record
        assert "x-faceledger-search-exact" not in headers(out)
        record = details(pg_url, headers(out)["x-faceledger-search-id"])
        assert "exact" not in record and "recall_estimate" not in record
        # and the other way round, then a delete on one is seen by the other
        other = b.index_faces(CollectionId="shared", Image={"Bytes": photo("Abel_Pacheco", 1)},
                              MaxFaces=1)["FaceRecords"][0]["Face"]["FaceId"]
        found = a.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo("Abel_Pacheco", 3)})
        assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == [other]
        b.delete_faces(CollectionId="shared", FaceIds=[other])
        gone = a.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo("Abel_Pacheco", 3)})
        assert gone["FaceMatches"] == []
        b.delete_collection(CollectionId="shared")
        with pytest.raises(ClientError) as err:
            a.search_faces_by_image(CollectionId="shared", Image={"Bytes": photo("Anthony_Fauci", 2)})
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    finally:
        second.stop()
        first.stop()


def test_an_hnsw_search_says_it_may_miss_mates_in_headers_and_ledger(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    srv = start_server(tmp_path / "data", workers=1, store=pg_url, extra_env={"FACELEDGER_PG_ANN_MIN_FACES": "1"})
    try:
        rek = srv.client()
        rek.create_collection(CollectionId="ann")
        ids = {p: rek.index_faces(CollectionId="ann", Image={"Bytes": photo(p, 1)}, MaxFaces=1)
               ["FaceRecords"][0]["Face"]["FaceId"] for p in ("Anthony_Fauci", "Abel_Pacheco", "Anwar_Ibrahim")}
        deadline = time.monotonic() + 90  # the HNSW index is built in the background after the first face
        while True:
            out = rek.search_faces_by_image(CollectionId="ann", Image={"Bytes": photo("Anthony_Fauci", 2)})
            if "x-faceledger-search-exact" in headers(out) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert headers(out)["x-faceledger-search-exact"] == "false"
        assert headers(out)["x-faceledger-recall-estimate"] == "0.99"
        assert out["FaceMatches"][0]["Face"]["FaceId"] == ids["Anthony_Fauci"]
        record = details(pg_url, headers(out)["x-faceledger-search-id"])
        assert record["exact"] is False and record["recall_estimate"] == 0.99
        by_face = rek.search_faces(CollectionId="ann", FaceId=ids["Abel_Pacheco"])
        assert headers(by_face)["x-faceledger-search-exact"] == "false"
        users = rek.search_users_by_image(CollectionId="ann", Image={"Bytes": photo("Anwar_Ibrahim", 2)})
        assert headers(users)["x-faceledger-search-exact"] == "false"
        assert details(pg_url, headers(users)["x-faceledger-search-id"])["exact"] is False
    finally:
        srv.stop()
