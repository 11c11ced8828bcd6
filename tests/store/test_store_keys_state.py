from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from faceledger.errors import (
    IdempotentParameterMismatchError,
    InvalidParameterError,
    ResourceNotFoundError,
)
from faceledger.store import Catalog
from faceledger.store.keys import ROLES
from faceledger.store.sealing import MASTER_KEY_FILE, SealError
from faceledger.store.state import params_hash


def _db_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.glob("catalog.db*"))


def test_create_get_list_revoke(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        key_id, secret = catalog.create_key(tx, "searcher", "desk 4", {"purpose": "case-work"})
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key_id)
    assert len(secret) == 40
    key = catalog.get_key(key_id)
    assert key is not None
    assert key["secret"] == secret
    assert (key["role"], key["label"], key["defaults"], key["revoked"]) == (
        "searcher", "desk 4", {"purpose": "case-work"}, False)
    listed = catalog.list_keys()
    assert [k["access_key_id"] for k in listed] == [key_id]
    assert "secret" not in listed[0] and "secret_enc" not in listed[0]
    with catalog.transaction() as tx:
        catalog.revoke_key(tx, key_id)
        catalog.revoke_key(tx, key_id)
    revoked = catalog.get_key(key_id)
    assert revoked is not None and revoked["revoked"] and revoked["revoked_at"] is not None
    assert catalog.get_key("AKIA0000000000000000") is None
    with pytest.raises(ResourceNotFoundError), catalog.transaction() as tx:
        catalog.revoke_key(tx, "AKIA0000000000000000")


def test_roles(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        for role in ROLES:
            catalog.create_key(tx, role)
    assert sorted(k["role"] for k in catalog.list_keys()) == sorted(ROLES)
    with pytest.raises(InvalidParameterError), catalog.transaction() as tx:
        catalog.create_key(tx, "superuser")


def test_secret_is_not_in_catalog_bytes(data_dir: Path) -> None:
    with Catalog.open(data_dir) as cat:
        with cat.transaction() as tx:
            _, secret = cat.create_key(tx, "admin")
        assert secret.encode() not in _db_bytes(data_dir)  # WAL file included
    assert secret.encode() not in _db_bytes(data_dir)
    mode = stat.S_IMODE((data_dir / MASTER_KEY_FILE).stat().st_mode)
    assert mode == 0o600


def test_secrets_survive_reopen_and_need_their_master_key(data_dir: Path) -> None:
    with Catalog.open(data_dir) as cat, cat.transaction() as tx:
        key_id, secret = cat.create_key(tx, "admin")
    with Catalog.open(data_dir) as cat:
        key = cat.get_key(key_id)
        assert key is not None and key["secret"] == secret
    key_file = data_dir / MASTER_KEY_FILE
    original = key_file.read_bytes()
    key_file.unlink()
    with pytest.raises(SealError, match="missing"):
        Catalog.open(data_dir)
    key_file.write_text("q" * 43 + "=\n")  # a different, well-formed 32-byte key
    with pytest.raises(SealError, match="not the master key"):
        Catalog.open(data_dir)
    key_file.write_bytes(original)
    with Catalog.open(data_dir) as cat:
        assert cat.get_key(key_id) is not None


def test_sealed_secret_is_bound_to_its_key_id(catalog: Catalog) -> None:
    with catalog.transaction() as tx:
        a, _ = catalog.create_key(tx, "admin")
        b, _ = catalog.create_key(tx, "auditor")
    conn = catalog.connection()
    sealed_a = conn.execute("SELECT secret_enc FROM api_keys WHERE access_key_id=?", (a,)).fetchone()[0]
    conn.execute("UPDATE api_keys SET secret_enc = ? WHERE access_key_id = ?", (sealed_a, b))
    with pytest.raises(SealError):
        catalog.get_key(b)


def test_state_round_trip(catalog: Catalog) -> None:
    assert catalog.get_state("halt") is None
    with catalog.transaction() as tx:
        catalog.set_state(tx, "halt", {"halted": True, "by": "AKIA1"})
    with catalog.transaction() as tx:
        catalog.set_state(tx, "halt", {"halted": False})
    assert catalog.get_state("halt") == {"halted": False}


def test_idempotency(catalog: Catalog) -> None:
    h = params_hash({"CollectionId": "c", "MaxFaces": 3})
    assert h == params_hash({"MaxFaces": 3, "CollectionId": "c"})
    assert catalog.idempotent_get("IndexFaces", "tok") is None
    with catalog.transaction() as tx:
        catalog.idempotent_put(tx, "IndexFaces", "tok", h, {"FaceRecords": []})
        catalog.idempotent_put(tx, "IndexFaces", "tok", h, {"FaceRecords": ["ignored"]})
    assert catalog.idempotent_get("IndexFaces", "tok") == (h, {"FaceRecords": []})
    assert catalog.idempotent_get("CreateUser", "tok") is None
    with pytest.raises(IdempotentParameterMismatchError), catalog.transaction() as tx:
        catalog.idempotent_put(tx, "IndexFaces", "tok", "other", {})
    with catalog.transaction() as tx:
        assert catalog.purge_idempotency(tx, older_than=0.0) == 0
        assert catalog.purge_idempotency(tx, older_than=float("inf")) == 1
    assert catalog.idempotent_get("IndexFaces", "tok") is None


def test_purge_idempotency_by_token_prefix(catalog: Catalog) -> None:
    """The retention sweep forgets replay signatures (``sig:``) but keeps clients' own tokens."""
    with catalog.transaction() as tx:
        catalog.idempotent_put(tx, "IndexFaces", "sig:abc", "signed", {"FaceRecords": []})
        catalog.idempotent_put(tx, "CreateUser", "client-token", "h", {})
    with catalog.transaction() as tx:
        assert catalog.purge_idempotency(tx, float("inf"), "sig:") == 1
    assert catalog.idempotent_get("IndexFaces", "sig:abc") is None
    assert catalog.idempotent_get("CreateUser", "client-token") is not None
