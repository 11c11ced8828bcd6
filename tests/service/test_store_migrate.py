"""`faceledger store migrate`: a SQLite data directory copied into PostgreSQL (issue #14), through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import psycopg

from faceledger.service import create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger
from faceledger.store.opening import open_catalog

from .test_operations import BLUE, GREEN, RED, img, run


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(settings.data_dir)}
    env.pop("FACELEDGER_STORE", None)
    return subprocess.run([sys.executable, "-m", "faceledger.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def populate(service) -> dict:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="a")
    run(service, "CreateCollection", CollectionId="b", Tags={"unit": "x"})
    consent = run(service, "CreateConsent", Subject="s-1", NoticeText="n", NoticeVersion="1",
                  Purpose="general")["Consent"]["ConsentId"]
    ctx = {"faceledger_headers": {"x-faceledger-consent": consent}}
    red = service.dispatch("IndexFaces", {"CollectionId": "a", "Image": img(RED), "QualityFilter": "NONE"},
                           *_admin(), ctx)["FaceRecords"][0]["Face"]["FaceId"]
    for colour in (BLUE, GREEN):
        run(service, "IndexFaces", CollectionId="b", Image=img(colour))
    run(service, "CreateUser", CollectionId="a", UserId="alice", ClientRequestToken="tok-1")
    run(service, "AssociateFaces", CollectionId="a", UserId="alice", FaceIds=[red])
    run(service, "SearchFacesByImage", CollectionId="a", Image=img(RED))
    return {"red": red, "consent": consent}


def _admin():  # type: ignore[no-untyped-def]
    from .conftest import principal

    return (principal("admin"),)


def snapshot(catalog: Catalog) -> dict:
    cols = catalog.list_collections(None, 100)
    faces = {c["collection_id"]: catalog.list_faces(c["collection_id"], None, 100, with_vectors=True) for c in cols}
    return {
        "collections": cols,
        "faces": {k: [{**f, "vector": f["vector"].tolist()} for f in v] for k, v in faces.items()},
        "users": catalog.list_users("a", None, 10),
        "keys": catalog.list_keys(),
        "consents": catalog.list_consents(),
        "pending": catalog.pending_reviews(),
        "ledger": list(Ledger(catalog).iter_all()),
    }


def test_migrate_copies_everything_verifies_and_a_second_run_is_a_no_op(service, pg_url) -> None:  # type: ignore[no-untyped-def]
    made = populate(service)
    settings = service.settings
    before = snapshot(service.catalog)
    service.close()
    first = cli(settings, "store", "migrate", "--to", pg_url, "--json", "--batch", "2")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["Verified"] and out["Copied"]["faces"] == 3 and out["Copied"]["ledger"] == len(before["ledger"])
    assert out["LedgerHeadHash"] == before["ledger"][-1]["hash"]  # the same head hash
    again = json.loads(cli(settings, "store", "migrate", "--to", pg_url, "--json").stdout)
    assert again["CopiedTotal"] == 0 and again["Verified"]
    # the service on PostgreSQL sees the same catalog: counts, vectors (unsealed), users, consents, ledger
    pg = Settings(data_dir=settings.data_dir, store=pg_url)
    with open_catalog(pg) as cat:
        assert cat.dialect == "postgresql"
        assert snapshot(cat) == before
        assert cat.get_key(before["keys"][0]["access_key_id"]) is not None if before["keys"] else True
        assert cat.faces_with_consent(made["consent"]) == [("a", made["red"])]
    verify = subprocess.run([sys.executable, "-m", "faceledger.cli.main", "audit", "verify", "--json"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "FACELEDGER_DATA_DIR": str(settings.data_dir), "FACELEDGER_STORE": pg_url})
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr
    from faceledger.engine import Engine, EngineSettings
    from faceledger.store.pg_vectors import PgVectorIndex
    from faceledger.testing import FakeDetector, FakeEmbedder

    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    catalog = open_catalog(pg)
    # searched in PostgreSQL as the service does there: the copied collections have their partitions
    index = PgVectorIndex(catalog.vector_pool)
    assert index.size("a") == 1 and index.size("b") == 2 and index.spec("b") == (128, "euclidean")
    svc = create(pg, catalog, index, EnginePool(EngineSettings(), engine=engine))
    try:
        hit = run(svc, "SearchFacesByImage", CollectionId="a", Image=img(RED))
        assert [m["Face"]["FaceId"] for m in hit["FaceMatches"]] == [made["red"]]
    finally:
        svc.close()


def test_an_interrupted_migration_resumes_without_duplicates(service, pg_url) -> None:  # type: ignore[no-untyped-def]
    populate(service)
    settings = service.settings
    before = snapshot(service.catalog)
    second = sorted(f["face_id"] for f in before["faces"]["b"])[1]
    service.close()
    Catalog.open_postgres(settings.data_dir, pg_url).close()  # the schema, so a fault can be planted in it
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'cut short'; END $$")
        conn.execute(f"CREATE TRIGGER cut BEFORE INSERT ON faces FOR EACH ROW WHEN (NEW.face_id = '{second}') "
                     "EXECUTE FUNCTION cut()")
    cut = cli(settings, "store", "migrate", "--to", pg_url, "--batch", "1")
    assert cut.returncode == 1 and "cut short" in cut.stderr and "Traceback" not in cut.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 2  # committed batches stay
        assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0  # the ledger goes last
        conn.execute("DROP TRIGGER cut ON faces")
    done = cli(settings, "store", "migrate", "--to", pg_url, "--json")
    out = json.loads(done.stdout)
    assert done.returncode == 0 and out["Verified"] and out["Copied"]["faces"] == 1, done.stderr
    with open_catalog(Settings(data_dir=settings.data_dir, store=pg_url)) as cat:
        assert snapshot(cat) == before  # counters rebuilt once, nothing twice


def test_migrating_into_another_catalogs_ledger_is_refused(service, pg_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    populate(service)
    settings = service.settings
    service.close()
    other = Settings(data_dir=tmp_path / "other", store=pg_url)
    other.data_dir.mkdir(mode=0o700)
    shutil.copy2(settings.data_dir / "master.key", other.data_dir / "master.key")  # same key, another ledger
    with open_catalog(other) as cat, cat.transaction() as tx:
        Ledger(cat).append(tx, operation="Other", principal=None, collection_id=None, details={})
    refused = cli(Settings(data_dir=settings.data_dir), "store", "migrate", "--to", pg_url)
    assert refused.returncode == 3 and "is not this catalog's" in refused.stderr, refused.stderr
    with psycopg.connect(pg_url) as conn:  # refused before anything was written
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 0


def test_a_collection_of_another_pack_keeps_its_dim_and_metric(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    """A 192-d cosine collection (an operator's pack) is copied with its dim, metric and whole vectors."""
    import time
    import uuid

    import numpy as np

    from faceledger.store.migrate import migrate

    vector = np.random.default_rng(7).standard_normal(192).astype(np.float32)
    face = {"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()), "confidence": 99.0,
            "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1}, "vector": vector}
    with Catalog.open(tmp_path / "src") as source:
        with source.transaction() as tx:
            source.create_collection(tx, "mfn", "mobilefacenet-1", {}, time.time(), 192, "cosine")
            source.add_faces(tx, "mfn", [face])
        with open_catalog(Settings(data_dir=tmp_path / "src", store=pg_url)) as target:
            migrate(source, target)
            coll = target.get_collection("mfn")
            assert (coll["model_version"], coll["dim"], coll["metric"]) == ("mobilefacenet-1", 192, "cosine")
            ids, matrix = target.iter_vectors("mfn")
            assert ids == [face["face_id"]]
            np.testing.assert_array_equal(matrix[0], vector)
