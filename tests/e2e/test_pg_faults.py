"""PostgreSQL faults under a real server and real boto3 (issue #14).

PostgreSQL restarted under load: requests fail with the retryable 503
ServiceUnavailableException, nothing is half-written, and the service reconnects
without a restart. PostgreSQL down: writes are refused and searches answer an
error, never an empty "no match". Its own cluster (it is stopped and started
here), not the session's.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from faceledger import testing_pg
from faceledger.store.pg_db import POOL_TIMEOUT_S

from ..conftest import data_path
from .conftest import Server, free_port, start_server

RETRYABLE = ("ServiceUnavailableException", 503)


def photo(person: str, n: int = 1) -> bytes:
    return data_path("lfw_dev", person, f"{person}_{n:04d}.jpg").read_bytes()


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    root = Path(tempfile.mkdtemp(prefix="faceledger-pgfault-"))
    url = testing_pg.start(root, free_port(), fast=True)
    yield root, testing_pg.create_database(url, "faults")
    testing_pg.stop(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(cluster, tmp_path_factory):  # type: ignore[no-untyped-def]
    _, url = cluster
    s = start_server(tmp_path_factory.mktemp("pgfault") / "data", workers=1, store=url)
    rek = s.client()
    rek.create_collection(CollectionId="load")
    rek.index_faces(CollectionId="load", Image={"Bytes": photo("Anthony_Fauci")}, ExternalImageId="seed", MaxFaces=1)
    yield s
    s.stop()


def outcome(call) -> tuple[str, int] | dict:  # type: ignore[no-untyped-def]
    try:
        return call()  # type: ignore[no-any-return]
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_postgresql_restarted_under_load(srv: Server, cluster) -> None:  # type: ignore[no-untyped-def]
    root, _ = cluster
    images = [p.read_bytes() for p in sorted(data_path("lfw_dev").glob("A*/*_0001.jpg"))[:30]]
    probe = photo("Anthony_Fauci", 2)
    acked: list[str] = []
    errors: list[tuple[str, int]] = []
    empty_searches: list[int] = []
    ok_after: list[float] = []
    restarted = threading.Event()
    stop = threading.Event()

    def index(offset: int) -> None:
        rek = srv.client(retries={"total_max_attempts": 1})  # no SDK retry: every failure shows
        i = offset
        while not stop.is_set():
            img = images[i % len(images)]
            got = outcome(lambda img=img: rek.index_faces(CollectionId="load", Image={"Bytes": img}, MaxFaces=1,
                                                          QualityFilter="NONE"))
            i += 2
            if isinstance(got, tuple):
                errors.append(got)
                continue
            acked.extend(r["Face"]["FaceId"] for r in got["FaceRecords"])
            if restarted.is_set():
                ok_after.append(time.time())

    def search() -> None:
        rek = srv.client(retries={"total_max_attempts": 1})
        while not stop.is_set():
            got = outcome(lambda: rek.search_faces_by_image(CollectionId="load", Image={"Bytes": probe}))
            if isinstance(got, tuple):
                errors.append(got)
            elif not got["FaceMatches"]:
                empty_searches.append(1)  # the seed is always there: empty would be a lie

    threads = [threading.Thread(target=index, args=(k,)) for k in range(2)] + [threading.Thread(target=search)]
    for t in threads:
        t.start()
    try:
        deadline = time.time() + 120
        while len(acked) < 4 and time.time() < deadline:
            time.sleep(0.05)
        assert len(acked) >= 4
        # fast shutdown: open sessions are cut, in-flight work aborted; down longer than the pool waits
        # for a connection (pg_db.POOL_TIMEOUT_S), so requests meet it rather than queue through it
        testing_pg.stop(root)
        time.sleep(POOL_TIMEOUT_S + 3)
        testing_pg.start(root, _port(root), fast=True)
        restarted.set()
        deadline = time.time() + 120
        while len(ok_after) < 4 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(ok_after) >= 4, "the service did not recover after PostgreSQL came back"  # no service restart
    assert errors and set(errors) <= {RETRYABLE}, errors  # retryable, never a 500 or a traceback
    assert not empty_searches
    rek = srv.client()
    listed = {f["FaceId"] for p in rek.get_paginator("list_faces").paginate(CollectionId="load") for f in p["Faces"]}
    assert set(acked) <= listed  # nothing acknowledged was lost
    assert rek.describe_collection(CollectionId="load")["FaceCount"] == len(listed)
    shown = json.loads(srv.cli("audit", "show", "--operation", "IndexFaces", "--limit", "1000", "--json").stdout)
    in_ledger = {fid for r in shown["records"] for fid in r["details"].get("face_ids", [])}
    assert in_ledger == listed  # every face has its record, no record lacks its face: nothing half-written
    verify = srv.cli("audit", "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr


def test_postgresql_down_refuses_writes_and_searches_then_recovers(srv: Server, cluster) -> None:  # type: ignore[no-untyped-def]
    root, _ = cluster
    rek = srv.client(retries={"total_max_attempts": 1})
    face_id = rek.list_faces(CollectionId="load", MaxResults=1)["Faces"][0]["FaceId"]
    testing_pg.stop(root)
    try:
        probe = {"Bytes": photo("Anthony_Fauci", 2)}
        calls = {
            "IndexFaces": lambda: rek.index_faces(CollectionId="load", Image={"Bytes": photo("Abel_Pacheco")}),
            "SearchFacesByImage": lambda: rek.search_faces_by_image(CollectionId="load", Image=probe),
            "SearchFaces": lambda: rek.search_faces(CollectionId="load", FaceId=face_id),
            "ListFaces": lambda: rek.list_faces(CollectionId="load"),
            "CreateCollection": lambda: rek.create_collection(CollectionId="never"),
        }
        for name, call in calls.items():
            assert outcome(call) == RETRYABLE, name  # an error, never an empty "no match"
        # boto3's own retries (standard mode) carry a call across PostgreSQL coming back
        patient = srv.client(retries={"max_attempts": 10, "mode": "standard"})
        threading.Timer(2.0, lambda: testing_pg.start(root, _port(root), fast=True)).start()
        out = patient.search_faces_by_image(CollectionId="load", Image=probe)
        assert out["FaceMatches"]
    finally:
        testing_pg.start(root, _port(root), fast=True)  # no-op when the timer already did
    assert srv.proc.poll() is None  # the same service process throughout
    assert "never" not in rek.list_collections()["CollectionIds"]


def _port(root: Path) -> int:
    return int((root / testing_pg.URL_FILE).read_text().strip().rsplit(":", 1)[1].split("/")[0])
