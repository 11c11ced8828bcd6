from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from faceledger.errors import (
    InvalidParameterError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
)
from faceledger.store import Catalog

FaceFactory = Callable[..., dict[str, Any]]


def test_create_get_round_trip(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        made = catalog.create_collection(tx, "c1", "dlib-v1", {"k": "v"}, 1234.5)
    got = catalog.get_collection("c1")
    assert made == got == {
        "collection_id": "c1",
        "model_version": "dlib-v1",
        "created_at": 1234.5,
        "tags": {"k": "v"},
        "face_count": 0,
        "user_count": 0,
        "dim": 128,
        "metric": "euclidean",
    }


def test_duplicate_and_missing(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c1", "m", {}, 1.0)
    with pytest.raises(ResourceAlreadyExistsError), catalog.transaction() as tx:
        catalog.create_collection(tx, "c1", "m", {}, 2.0)
    with pytest.raises(ResourceNotFoundError):
        catalog.get_collection("nope")
    with pytest.raises(ResourceNotFoundError), catalog.transaction() as tx:
        catalog.delete_collection(tx, "nope")


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "slash/no"])
def test_invalid_collection_id(catalog: Catalog, bad: str) -> None:
    with pytest.raises(InvalidParameterError), catalog.transaction() as tx:
        catalog.create_collection(tx, bad, "m", {}, 1.0)


def test_list_is_sorted_and_paged(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        for cid in ["b", "a", "d", "c"]:
            catalog.create_collection(tx, cid, "m", {}, 1.0)
    first = catalog.list_collections(None, 3)
    assert [c["collection_id"] for c in first] == ["a", "b", "c"]
    rest = catalog.list_collections(first[-1]["collection_id"], 3)
    assert [c["collection_id"] for c in rest] == ["d"]
    with pytest.raises(InvalidParameterError):
        catalog.list_collections(None, 0)


def test_tags_replace(catalog: Catalog, collection: str) -> None:
    with catalog.transaction() as tx:
        updated = catalog.set_collection_tags(tx, collection, {"x": "1"})
    assert updated["tags"] == {"x": "1"}
    assert catalog.get_collection(collection)["tags"] == {"x": "1"}
    with pytest.raises(InvalidParameterError), catalog.transaction() as tx:
        catalog.set_collection_tags(tx, collection, {"x": 1})  # type: ignore[dict-item]


def test_delete_removes_faces_users_and_vectors(
    catalog: Catalog, collection: str, make_face: FaceFactory
) -> None:
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "other", "m", {}, 1.0)
        catalog.add_faces(tx, collection, [make_face() for _ in range(3)])
        catalog.add_faces(tx, "other", [make_face()])
        catalog.create_user(tx, collection, "u1", 1.0)
    info = catalog.get_collection(collection)
    assert (info["face_count"], info["user_count"]) == (3, 1)
    with catalog.transaction() as tx:
        assert catalog.delete_collection(tx, collection) == 3
    with pytest.raises(ResourceNotFoundError):
        catalog.get_collection(collection)
    conn = catalog.connection()
    assert conn.execute("SELECT COUNT(*) FROM faces WHERE collection_id = ?",
                        (collection,)).fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    assert catalog.get_collection("other")["face_count"] == 1
    # The id can be reused afterwards, starting empty.
    with catalog.transaction() as tx:
        again = catalog.create_collection(tx, collection, "m", {}, 2.0)
    assert again["face_count"] == 0 and again["user_count"] == 0
