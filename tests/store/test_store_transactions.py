from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faceledger.store import Catalog, Ledger
from faceledger.store.schema import SCHEMA_VERSION

FaceFactory = Callable[..., dict[str, Any]]


class Boom(Exception):
    pass


def test_rollback_leaves_no_face_and_no_ledger_record(
    catalog: Catalog, ledger: Ledger, collection: str, make_face: FaceFactory
) -> None:
    face = make_face()
    with pytest.raises(Boom), catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [face])
        ledger.append(tx, operation="IndexFaces", principal="AKIA1", collection_id=collection,
                      details={"face_ids": [face["face_id"]]})
        assert catalog.get_collection(collection)["face_count"] == 1  # visible inside
        raise Boom
    assert catalog.get_faces(collection, [face["face_id"]]) == []
    assert catalog.get_collection(collection)["face_count"] == 0
    assert ledger.head() is None
    conn = catalog.connection()
    assert conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0


def test_committed_effect_and_record_survive_reopen(data_dir: Path, make_face: FaceFactory) -> None:
    with Catalog.open(data_dir) as cat, cat.transaction() as tx:
        cat.create_collection(tx, "c", "m", {}, 1.0)
        Ledger(cat).append(tx, operation="CreateCollection", principal=None,
                           collection_id="c", details={})
    with Catalog.open(data_dir) as cat:
        assert cat.get_collection("c")["collection_id"] == "c"
        head = Ledger(cat).head()
        assert head is not None and head["operation"] == "CreateCollection"


def test_pragmas_and_schema_version(catalog: Catalog) -> None:
    conn = catalog.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(data_dir: Path) -> None:
    Catalog.open(data_dir).close()
    raw = sqlite3.connect(data_dir / "catalog.db")
    raw.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(Exception, match="newer"):
        Catalog.open(data_dir)


def test_nested_and_stale_transactions_are_errors(catalog: Catalog, collection: str) -> None:
    with catalog.transaction() as tx:
        with pytest.raises(RuntimeError):
            with catalog.transaction():
                pass
    with pytest.raises(RuntimeError):
        catalog.create_user(tx, collection, "late", 1.0)


def test_transaction_of_another_catalog_is_refused(tmp_path: Path, collection: str,
                                                    catalog: Catalog) -> None:
    with Catalog.open(tmp_path / "other") as other, other.transaction() as tx:
        with pytest.raises(RuntimeError):
            catalog.create_user(tx, collection, "u", 1.0)


def test_threads_write_concurrently(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ledger = Ledger(catalog)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                face = make_face()
                with catalog.transaction() as tx:
                    catalog.add_faces(tx, collection, [face])
                    ledger.append(tx, operation="IndexFaces", principal=None,
                                  collection_id=collection, details={"id": face["face_id"]})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert catalog.get_collection(collection)["face_count"] == 80
    result = ledger.verify()
    assert result.ok and result.checked == 80


def test_connection_of_a_finished_thread_is_released(catalog: Catalog, collection: str) -> None:
    import gc

    before = len(catalog._db._all)

    def read() -> None:
        catalog.get_collection(collection)

    for _ in range(5):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    gc.collect()
    assert len(catalog._db._all) == before


def test_a_catalog_whose_tables_disagree_with_its_version_is_a_clear_error_and_left_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # as a data directory written by a build that numbered its migrations differently
    import sqlite3

    import pytest

    from faceledger.errors import FaceledgerError
    from faceledger.store import Catalog
    from faceledger.store.schema import SCHEMA_VERSION

    data = tmp_path / "data"
    Catalog.open(data).close()
    conn = sqlite3.connect(data / "catalog.db")
    conn.execute("DELETE FROM schema_version WHERE version = ?", (SCHEMA_VERSION,))
    conn.commit()
    conn.close()
    with pytest.raises(FaceledgerError, match=f"from schema version {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}"):
        Catalog.open(data)
    conn = sqlite3.connect(data / "catalog.db")
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (SCHEMA_VERSION - 1,)
