"""A full disk is one clear, retryable error, and the transaction it hit leaves nothing behind.

``PRAGMA max_page_count`` makes SQLite fail honestly with SQLITE_FULL at a
chosen size, on this thread's own catalog connection (the one writes use).
"""

from __future__ import annotations

import pytest

from faceledger.errors import StorageFullError
from faceledger.store import Catalog, Ledger

from .conftest import FaceFactory


def test_sqlite_full_rolls_back_and_says_so(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ledger = Ledger(catalog)
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [make_face()])
        ledger.append(tx, operation="IndexFaces", principal="p", collection_id=collection, details={}, at=1.0)
    conn = catalog.connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow by one page
    with pytest.raises(StorageFullError, match="is full .*nothing was written.*retry") as err:
        with catalog.transaction() as tx:
            catalog.add_faces(tx, collection, [make_face() for _ in range(200)])
            ledger.append(tx, operation="IndexFaces", principal="p", collection_id=collection, details={}, at=2.0)
    assert err.value.code == "StorageFullException" and err.value.http_status == 503
    assert catalog.get_collection(collection)["face_count"] == 1
    assert len(catalog.list_faces(collection, None, 1000)) == 1
    assert [r["seq"] for r in ledger.records()] == [1]
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: the same write now succeeds
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [make_face() for _ in range(200)])
    assert catalog.get_collection(collection)["face_count"] == 201


def test_other_sqlite_errors_are_not_called_disk_full(catalog: Catalog) -> None:
    import sqlite3

    with pytest.raises(sqlite3.OperationalError):
        with catalog.transaction() as tx:
            tx.execute("SELECT * FROM no_such_table")
