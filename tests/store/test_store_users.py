from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from faceledger.errors import ConflictError, ResourceNotFoundError, ServiceQuotaExceededError
from faceledger.store import Catalog
from faceledger.store.users import MAX_FACES_PER_USER

FaceFactory = Callable[..., dict[str, Any]]


def _faces(catalog: Catalog, collection: str, make_face: FaceFactory, n: int) -> list[str]:
    faces = [make_face() for _ in range(n)]
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, faces)
    return [f["face_id"] for f in faces]


def test_create_get_list_delete(catalog: Catalog, collection: str) -> None:
    with catalog.transaction() as tx:
        made = catalog.create_user(tx, collection, "bob", 5.0)
        catalog.create_user(tx, collection, "alice", 6.0)
    assert made == {"user_id": "bob", "user_status": "CREATED", "face_count": 0, "created_at": 5.0}
    assert catalog.get_user(collection, "bob") == made
    assert [u["user_id"] for u in catalog.list_users(collection, None, 10)] == ["alice", "bob"]
    assert [u["user_id"] for u in catalog.list_users(collection, "alice", 10)] == ["bob"]
    assert catalog.get_collection(collection)["user_count"] == 2
    with pytest.raises(ConflictError), catalog.transaction() as tx:
        catalog.create_user(tx, collection, "bob", 7.0)
    with catalog.transaction() as tx:
        catalog.delete_user(tx, collection, "bob")
    with pytest.raises(ResourceNotFoundError):
        catalog.get_user(collection, "bob")
    with pytest.raises(ResourceNotFoundError), catalog.transaction() as tx:
        catalog.delete_user(tx, collection, "bob")
    assert catalog.get_collection(collection)["user_count"] == 1


def test_associate_reasons_and_status(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ids = _faces(catalog, collection, make_face, 3)
    missing = "00000000-0000-4000-8000-000000000000"
    with catalog.transaction() as tx:
        catalog.create_user(tx, collection, "alice", 1.0)
        catalog.create_user(tx, collection, "bob", 1.0)
        done, failed = catalog.associate_faces(tx, collection, "alice", [ids[0], ids[1]])
        assert (done, failed) == ([ids[0], ids[1]], [])
        done, failed = catalog.associate_faces(tx, collection, "bob", [ids[0], ids[2], missing])
    assert done == [ids[2]]
    assert failed == [
        {"FaceId": ids[0], "UserId": "alice", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]},
        {"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]},
    ]
    alice = catalog.get_user(collection, "alice")
    assert (alice["user_status"], alice["face_count"]) == ("ACTIVE", 2)
    assert catalog.user_face_ids(collection, "alice") == sorted([ids[0], ids[1]])
    with catalog.transaction() as tx:  # associating again is idempotent
        assert catalog.associate_faces(tx, collection, "alice", [ids[0]]) == ([ids[0]], [])


def test_disassociate(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ids = _faces(catalog, collection, make_face, 3)
    with catalog.transaction() as tx:
        catalog.create_user(tx, collection, "alice", 1.0)
        catalog.create_user(tx, collection, "bob", 1.0)
        catalog.associate_faces(tx, collection, "alice", [ids[0]])
        catalog.associate_faces(tx, collection, "bob", [ids[1]])
        done, failed = catalog.disassociate_faces(tx, collection, "alice", [ids[0], ids[1], ids[2]])
    assert done == [ids[0], ids[2]]
    assert failed == [{"FaceId": ids[1], "UserId": "bob", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}]
    assert catalog.user_face_ids(collection, "alice") == []
    assert catalog.get_user(collection, "alice")["user_status"] == "CREATED"


def test_delete_user_clears_faces(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ids = _faces(catalog, collection, make_face, 2)
    with catalog.transaction() as tx:
        catalog.create_user(tx, collection, "alice", 1.0)
        catalog.associate_faces(tx, collection, "alice", ids)
        catalog.delete_user(tx, collection, "alice")
    assert all(f["user_id"] is None for f in catalog.get_faces(collection, ids))
    assert catalog.get_collection(collection)["face_count"] == 2


def test_quota_of_faces_per_user(catalog: Catalog, collection: str, make_face: FaceFactory) -> None:
    ids = _faces(catalog, collection, make_face, MAX_FACES_PER_USER + 1)
    with catalog.transaction() as tx:
        catalog.create_user(tx, collection, "alice", 1.0)
        catalog.associate_faces(tx, collection, "alice", ids[:MAX_FACES_PER_USER])
    with pytest.raises(ServiceQuotaExceededError), catalog.transaction() as tx:
        catalog.associate_faces(tx, collection, "alice", ids[MAX_FACES_PER_USER:])
    assert len(catalog.user_face_ids(collection, "alice")) == MAX_FACES_PER_USER


def test_missing_user_or_collection(catalog: Catalog, collection: str) -> None:
    with pytest.raises(ResourceNotFoundError), catalog.transaction() as tx:
        catalog.associate_faces(tx, collection, "ghost", [])
    with pytest.raises(ResourceNotFoundError):
        catalog.list_users("nope", None, 10)
    with pytest.raises(ResourceNotFoundError):
        catalog.user_face_ids(collection, "ghost")
