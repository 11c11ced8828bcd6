from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceledger.store import Catalog

FaceFactory = Callable[..., dict[str, Any]]


def test_add_get_round_trip(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    face = make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [face])
    [got] = catalog.get_faces(collection, [face["face_id"]], with_vectors=True)
    np.testing.assert_array_equal(got.pop("vector"), face["vector"])
    expected = {k: v for k, v in face.items() if k != "vector"}
    assert got == {**expected, "collection_id": collection, "user_id": None}
    [plain] = catalog.get_faces(collection, [face["face_id"]])
    assert "vector" not in plain
    assert catalog.get_collection(collection)["face_count"] == 1


def test_get_faces_keeps_request_order_and_skips_missing(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    faces = [make_face() for _ in range(3)]
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, faces)
    ids = [f["face_id"] for f in faces]
    asked = [ids[2], "00000000-0000-4000-8000-000000000000", ids[0], ids[2]]
    assert [f["face_id"] for f in catalog.get_faces(collection, asked)] == [ids[2], ids[0]]


def test_list_faces_order_paging_and_filters(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    faces = [make_face() for _ in range(7)]
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, faces)
        catalog.create_user(tx, collection, "alice", 1.0)
        catalog.associate_faces(tx, collection, "alice", [faces[0]["face_id"], faces[1]["face_id"]])
    ids = sorted(f["face_id"] for f in faces)
    page1 = catalog.list_faces(collection, None, 4)
    page2 = catalog.list_faces(collection, page1[-1]["face_id"], 4)
    assert [f["face_id"] for f in page1 + page2] == ids
    assert all("vector" not in f for f in page1)
    assert all(f["vector"].shape == (128,) for f in catalog.list_faces(collection, None, 2, with_vectors=True))
    alice = catalog.list_faces(collection, None, 10, user_id="alice")
    assert [f["face_id"] for f in alice] == sorted([faces[0]["face_id"], faces[1]["face_id"]])
    subset = [faces[3]["face_id"], faces[4]["face_id"]]
    assert [f["face_id"] for f in catalog.list_faces(collection, None, 10, face_ids=subset)] == sorted(subset)


def test_delete_faces_returns_actually_deleted(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    faces = [make_face() for _ in range(3)]
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, faces)
        catalog.create_user(tx, collection, "bob", 1.0)
        catalog.associate_faces(tx, collection, "bob", [faces[2]["face_id"]])
    missing = "00000000-0000-4000-8000-000000000000"
    with catalog.transaction() as tx:
        kept = catalog.delete_faces(tx, collection, [faces[2]["face_id"]], keep_associated=True)
        deleted = catalog.delete_faces(tx, collection, [faces[0]["face_id"], missing])
    assert kept == []
    assert deleted == [faces[0]["face_id"]]
    assert catalog.get_collection(collection)["face_count"] == 2
    with catalog.transaction() as tx:
        assert catalog.delete_faces(tx, collection, [faces[2]["face_id"]]) == [faces[2]["face_id"]]
    assert catalog.get_user(collection, "bob")["user_status"] == "CREATED"


def test_iter_vectors_and_reopen(data_dir: Path, make_face: FaceFactory) -> None:
    faces = [make_face() for _ in range(25)]
    with Catalog.open(data_dir) as cat, cat.transaction() as tx:
        cat.create_collection(tx, "c", "m", {}, 1.0)
        cat.add_faces(tx, "c", faces)
    with Catalog.open(data_dir) as cat:
        ids, matrix = cat.iter_vectors("c")
    by_id = {f["face_id"]: f["vector"] for f in faces}
    assert ids == sorted(by_id)
    assert matrix.dtype == np.float32 and matrix.shape == (25, 128)
    np.testing.assert_array_equal(matrix, np.stack([by_id[i] for i in ids]))


def test_iter_vectors_empty(catalog: Catalog, collection: str) -> None:
    ids, matrix = catalog.iter_vectors(collection)
    assert ids == [] and matrix.shape == (0, 128)


def test_find_by_image_hash(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    a1, a2, b = make_face(image=b"A"), make_face(image=b"A"), make_face(image=b"B")
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [a1, a2, b])
    found = catalog.find_face_by_image_hash(collection, a1["image_sha256"])
    assert sorted(f["face_id"] for f in found) == sorted([a1["face_id"], a2["face_id"]])
    assert catalog.find_face_by_image_hash(collection, "0" * 64) == []


def test_invalid_faces_rejected(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    bad = [
        make_face(vector=np.zeros(127, dtype=np.float32)),
        make_face(vector=np.full(128, np.nan, dtype=np.float32)),
        make_face(face_id="NOT-A-UUID"),
        make_face(bbox={"Width": 1.0}),
        make_face(user_id="someone"),
        {k: v for k, v in make_face().items() if k != "vector"},
    ]
    for face in bad:
        with pytest.raises(InvalidParameterError), catalog.transaction() as tx:
            catalog.add_faces(tx, collection, [face])
    assert catalog.get_collection(collection)["face_count"] == 0


def test_duplicate_face_id_and_missing_collection(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    face = make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [face])
    with pytest.raises(ResourceAlreadyExistsError), catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [make_face(), face])
    assert catalog.get_collection(collection)["face_count"] == 1
    with pytest.raises(ResourceNotFoundError), catalog.transaction() as tx:
        catalog.add_faces(tx, "nope", [make_face()])
    with pytest.raises(ResourceNotFoundError):
        catalog.list_faces("nope", None, 10)


def test_vector_blob_is_in_face_row_sealed(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    face = make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [face])
    conn = catalog.connection()
    blob = conn.execute("SELECT vector FROM faces WHERE face_id = ?", (face["face_id"],)).fetchone()[0]
    plain = face["vector"].astype("<f4").tobytes()
    assert len(blob) == 12 + 512 + 16 and plain not in blob  # nonce, ciphertext, tag: not the vector
