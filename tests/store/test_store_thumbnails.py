"""Review thumbnails in the catalog: sealed, bound to their row, gone with their face or collection."""

from __future__ import annotations

import sqlite3

import pytest

from faceledger.store import Catalog
from faceledger.store.sealing import SealError

from .conftest import FaceFactory

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4


def test_thumbnails_round_trip_sealed(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    face = make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [face])
        catalog.add_thumbnail(tx, face["face_id"], collection, JPEG, 1.0, 99.0)
        catalog.add_probe_thumbnail(tx, 7, collection, JPEG[::-1], 1.0, 99.0)
    assert catalog.get_thumbnail(face["face_id"]) == JPEG
    assert catalog.get_probe_thumbnail(7) == JPEG[::-1]
    assert catalog.get_thumbnail("nope") is None and catalog.get_probe_thumbnail(8) is None
    raw = sqlite3.connect(catalog.path).execute("SELECT sealed FROM thumbnails").fetchone()[0]
    assert JPEG[4:68] not in raw  # encrypted at rest


def test_a_sealed_thumbnail_moved_to_another_face_does_not_open(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    a, b = make_face(), make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [a, b])
        catalog.add_thumbnail(tx, a["face_id"], collection, JPEG, 1.0, 99.0)
        catalog.add_thumbnail(tx, b["face_id"], collection, b"other", 1.0, 99.0)
    conn = sqlite3.connect(catalog.path)
    conn.execute("UPDATE thumbnails SET sealed = (SELECT sealed FROM thumbnails WHERE face_id = ?) "
                 "WHERE face_id = ?", (a["face_id"], b["face_id"]))
    conn.commit()
    conn.close()
    with pytest.raises(SealError):
        catalog.get_thumbnail(b["face_id"])


def test_thumbnails_go_with_their_face_and_collection(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    a, b = make_face(), make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [a, b])
        for f in (a, b):
            catalog.add_thumbnail(tx, f["face_id"], collection, JPEG, 1.0, 99.0)
        catalog.add_probe_thumbnail(tx, 3, collection, JPEG, 1.0, 99.0)
    with catalog.transaction() as tx:
        catalog.delete_faces(tx, collection, [a["face_id"]])
    assert catalog.get_thumbnail(a["face_id"]) is None and catalog.get_thumbnail(b["face_id"]) == JPEG
    with catalog.transaction() as tx:
        catalog.delete_collection(tx, collection)
    assert catalog.get_thumbnail(b["face_id"]) is None and catalog.get_probe_thumbnail(3) is None


def test_expired_thumbnails_are_listed_and_deleted(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    old, new = make_face(), make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [old, new])
        catalog.add_thumbnail(tx, old["face_id"], collection, JPEG, 1.0, 10.0)
        catalog.add_thumbnail(tx, new["face_id"], collection, JPEG, 1.0, 100.0)
        catalog.add_probe_thumbnail(tx, 5, collection, JPEG, 1.0, 10.0)
    assert catalog.expired_thumbnails(50.0) == ([(old["face_id"], collection)], [(5, collection)])
    with catalog.transaction() as tx:
        assert catalog.delete_thumbnails(tx, [old["face_id"]], [5]) == 2
    assert catalog.expired_thumbnails(50.0) == ([], [])
    assert catalog.get_thumbnail(new["face_id"]) == JPEG
