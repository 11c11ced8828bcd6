"""The PostgreSQL catalog shapes pgvector's partitions itself (issue #14): create, delete, migrate, schema v3."""

from __future__ import annotations

import time
import uuid

import numpy as np
import psycopg
import pytest

from faceledger.errors import PackUnavailableError
from faceledger.store.catalog import Catalog
from faceledger.store.pg_db import PgDatabase
from faceledger.store.pg_schema import MIGRATIONS, SCHEMA_VERSION
from faceledger.store.pg_vectors import PgVectorIndex, partition_name


def _face(dim: int = 128) -> dict:
    return {"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()), "confidence": 99.0,
            "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1},
            "vector": np.random.default_rng().standard_normal(dim).astype(np.float32)}


def _partitions(url: str) -> dict[str, int]:
    """Partition name -> its rows, for every partition of faces."""
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'faces'")]
        return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}


@pytest.fixture
def catalog(tmp_path, pg_url):  # type: ignore[no-untyped-def]
    cat = Catalog.open_postgres(tmp_path / "data", pg_url)
    yield cat
    cat.close()


def test_create_collection_makes_its_partition_and_delete_drops_it(catalog, pg_url) -> None:  # type: ignore[no-untyped-def]
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c.1", "m", {}, time.time(), dim=64, metric="cosine")
        catalog.add_faces(tx, "c.1", [_face(64), _face(64)])
    assert _partitions(pg_url) == {"faces_default": 0, partition_name("c.1"): 2}
    index = PgVectorIndex(catalog.vector_pool)
    assert index.size("c.1") == 2 and index.spec("c.1") == (64, "cosine")
    with catalog.transaction() as tx:
        catalog.delete_collection(tx, "c.1")
    assert _partitions(pg_url) == {"faces_default": 0}
    assert index.size("c.1") == 0 and index.spec("c.1") is None


def test_a_failed_create_leaves_no_partition(catalog, pg_url) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), catalog.transaction() as tx:
        catalog.create_collection(tx, "gone", "m", {}, time.time())
        raise RuntimeError("the request failed after the create")
    assert partition_name("gone") not in _partitions(pg_url)


def catalog_url(catalog: Catalog) -> str:
    return str(catalog.vector_pool.conninfo)


def test_swap_re_pins_the_partition_dimension_and_stats(catalog) -> None:  # type: ignore[no-untyped-def]
    f = _face()
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c", "old", {}, time.time())
        catalog.add_faces(tx, "c", [f])
    index = PgVectorIndex(catalog.vector_pool)
    new = np.random.default_rng(1).standard_normal(512).astype(np.float32)
    with catalog.transaction() as tx:
        catalog.stage_vectors(tx, "c", "new", 512, [(f["face_id"], new, "original:x")], time.time())
        catalog.swap_staged(tx, "c", "new", 512, "cosine")
    assert index.spec("c") == (512, "cosine")
    ids, mat = index.vectors("c", [f["face_id"]], expect="new")
    assert ids == [f["face_id"]] and mat.shape == (1, 512)
    with pytest.raises(PackUnavailableError, match="now holds new vectors, not old"):
        index.search("c", np.zeros(512, np.float32), 1, expect="old")
    with pytest.raises(psycopg.errors.CheckViolation), psycopg.connect(catalog_url(catalog)) as conn:
        # below the catalog's own shape check: the partition itself refuses the old dimension now
        conn.execute("INSERT INTO faces (collection_id, face_id, image_id, bbox, confidence, created_at, embedding) "
                     "VALUES ('c', 'x', 'i', '{}', 99, 0, %s::vector)", ("[" + ",".join(["0"] * 128) + "]",))


def test_schema_v5_moves_existing_collections_into_partitions(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    assert SCHEMA_VERSION == 6
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a catalog left at v4, with a face and its thumbnail
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        for version, script in MIGRATIONS[:4]:
            conn.execute(script.encode())
            conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (version,))
        # the writer keeps the counters (store/counters.py), so a raw insert states them
        conn.execute("INSERT INTO collections (collection_id, model_version, created_at, dim, face_count) "
                     "VALUES ('a', 'm', 0, 4, 2)")
        conn.execute("INSERT INTO faces (collection_id, face_id, image_id, bbox, confidence, created_at, embedding) "
                     "VALUES ('a', 'f1', 'i', '{}', 99, 0, '[1,0,0,0]'), ('a', 'f2', 'i', '{}', 99, 0, '[0,1,0,0]')")
        conn.execute("INSERT INTO thumbnails VALUES ('a', 'f1', 'x', 0, 0)")
    db = PgDatabase(pg_url)  # migrates to v5
    try:
        index = PgVectorIndex(db.pool)
        assert _partitions(pg_url) == {"faces_default": 0, partition_name("a"): 2}
        assert index.size("a") == 2 and index.spec("a") == (4, "euclidean")
        assert [m[0] for m in index.search("a", np.array([0, 1, 0, 0], np.float32), 2)] == ["f2", "f1"]
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 1  # not cascaded away
            assert conn.execute("SELECT face_count FROM collections").fetchone()[0] == 2
            with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the foreign key is back
                conn.execute("INSERT INTO thumbnails VALUES ('a', 'nope', 'x', 0, 0)")
    finally:
        db.close()


def test_postgresql_unreachable_is_store_unavailable_not_a_crash() -> None:
    from psycopg_pool import ConnectionPool

    from faceledger.errors import StoreUnavailableError
    from faceledger.evaluation.server import free_port

    pool = ConnectionPool(f"postgresql://u:secret@127.0.0.1:{free_port()}/none", min_size=1, timeout=0.5,
                          open=True, kwargs={"connect_timeout": 1})
    try:
        with pytest.raises(StoreUnavailableError) as err:
            PgVectorIndex(pool).search("c", np.zeros(128, np.float32), 1)
        assert "secret" not in str(err.value) and "unavailable" in str(err.value)
    finally:
        pool.close(timeout=1)


def test_a_create_behind_a_long_transaction_is_refused_in_time_and_leaves_nothing(catalog, pg_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from faceledger.errors import StoreUnavailableError
    from faceledger.store import pg_vectors

    monkeypatch.setattr(pg_vectors, "PARTITION_LOCK_TIMEOUT_S", 0.3)
    with psycopg.connect(pg_url) as long_reader:  # a transaction reading faces, still open
        long_reader.execute("SELECT count(*) FROM faces").fetchone()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="could not be changed"), catalog.transaction() as tx:
            catalog.create_collection(tx, "late", "m", {}, time.time())
        assert time.monotonic() - started < 5
        long_reader.rollback()
    with pytest.raises(Exception, match="does not exist"):
        catalog.get_collection("late")
    with catalog.transaction() as tx:  # and once it is gone, the create goes through
        catalog.create_collection(tx, "late", "m", {}, time.time())
    assert partition_name("late") in _partitions(pg_url)


def test_a_v2_catalog_upgrades_through_every_migration(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    """A catalog from before packs (v2: no dim/metric) with a face and its thumbnail
    upgrades v3..v6 in order: the collection gets 128-d euclidean, its partition and stats, and no change log
    triggers are left (PgVectorIndex needs none)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        for version, script in MIGRATIONS[:2]:
            conn.execute(script.encode())
            conn.execute("INSERT INTO schema_version VALUES (%s, 0)", (version,))
        v = ",".join(["0"] * 127 + ["1"])
        conn.execute("INSERT INTO collections (collection_id, model_version, created_at, face_count) "
                     "VALUES ('old', 'm', 0, 1)")
        conn.execute("INSERT INTO faces (collection_id, face_id, image_id, bbox, confidence, created_at, embedding) "
                     f"VALUES ('old', 'f1', 'i', '{{}}', 99, 0, '[{v}]')")
        conn.execute("INSERT INTO thumbnails VALUES ('old', 'f1', 'x', 0, 0)")
    db = PgDatabase(pg_url)
    try:
        index = PgVectorIndex(db.pool)
        assert _partitions(pg_url) == {"faces_default": 0, partition_name("old"): 1}
        assert index.size("old") == 1 and index.spec("old") == (128, "euclidean")
        q = np.zeros(128, np.float32)
        q[-1] = 1
        assert [m[0] for m in index.search("old", q, 1)] == ["f1"]
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 1
            left = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
            assert not left & {"faces_change", "collections_change", "collections_change_repin"}, left
            assert {"faces_counted_insert", "faces_counted_delete", "faces_vector_changed"} <= left
    finally:
        db.close()
