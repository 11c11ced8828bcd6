"""Face vectors are sealed at rest under master.key, and a catalog written before that is upgraded."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from faceledger.store import Catalog, Ledger
from faceledger.store.sealing import SealError

from .conftest import FaceFactory

FIXTURE = Path(__file__).parent / "data" / "v2-catalog"


def _fixture_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_v2_catalog", FIXTURE.parent / "make_v2_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("catalog.db*")))


def test_no_vector_is_readable_in_the_files(data_dir: Path, make_face: FaceFactory) -> None:
    faces = [make_face() for _ in range(20)]
    with Catalog.open(data_dir) as cat:
        with cat.transaction() as tx:
            cat.create_collection(tx, "c", "m", {}, 0.0)
            cat.add_faces(tx, "c", faces)
        files = raw_bytes(data_dir)  # the WAL too, while the catalog is open
        ids, matrix = cat.iter_vectors("c")
    files += raw_bytes(data_dir)
    for face in faces:
        plain = face["vector"].astype("<f4").tobytes()
        assert plain not in files and plain[:64] not in files
    by_id = {f["face_id"]: f["vector"] for f in faces}
    np.testing.assert_array_equal(matrix, np.stack([by_id[i] for i in ids]))


def test_a_vector_moved_to_another_face_or_under_another_key_does_not_open(
        catalog: Catalog, collection: str, make_face: FaceFactory, data_dir: Path) -> None:
    a, b = make_face(), make_face()
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, [a, b])
        tx.execute("UPDATE faces SET vector = (SELECT vector FROM faces WHERE face_id = ?) WHERE face_id = ?",
                   (a["face_id"], b["face_id"]))
    with pytest.raises(SealError, match=b["face_id"]):
        catalog.iter_vectors(collection)


def test_a_catalog_written_before_sealing_is_upgraded_in_place(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    module = _fixture_module()
    expected = module.v2_vectors()
    conn = sqlite3.connect(data / "catalog.db")
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (2,)
    assert conn.execute("SELECT COUNT(*) FROM faces WHERE length(vector) = 512").fetchone() == (5,)
    conn.close()
    with Catalog.open(data) as cat:
        ids, matrix = cat.iter_vectors("people")
        assert ids == [module.face_id(i) for i in range(5)]
        np.testing.assert_array_equal(matrix, expected)
        assert cat.get_collection("people")["face_count"] == 5 and cat.get_collection("people")["user_count"] == 1
        assert cat.user_face_ids("people", "u1") == [module.face_id(0), module.face_id(1)]
        assert Ledger(cat).verify().ok
        assert cat.get_key(cat.list_keys()[0]["access_key_id"])["secret"]  # master.key still opens the secret
        with cat.transaction() as tx:  # the rebuilt table keeps its counting triggers
            cat.delete_faces(tx, "people", [module.face_id(4)])
        assert cat.get_collection("people")["face_count"] == 4
    assert "sealing 5 face vector(s)" in caplog.text
    files = raw_bytes(data)
    assert all(v.astype("<f4").tobytes()[:64] not in files for v in expected)
    with Catalog.open(data) as cat:  # a second open has nothing left to do
        assert cat.connection().execute("SELECT COUNT(*) FROM faces WHERE length(vector) = 512").fetchone()[0] == 0
        np.testing.assert_array_equal(cat.iter_vectors("people")[1], expected[:4])


def test_an_upgrade_cut_short_reads_both_kinds_and_finishes_at_the_next_open(tmp_path: Path) -> None:
    from faceledger.store import faces
    from faceledger.store.db import Database
    from faceledger.store.sealing import Sealer, load_or_create_master_key

    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    db = Database(data / "catalog.db")  # schema migrated, then only two rows sealed: the process "died"
    with db.transaction() as tx:
        faces.seal_plaintext(tx.conn, Sealer(load_or_create_master_key(data, create=False)), 0, 2)
    db.close()
    with Catalog.open(data) as cat:
        np.testing.assert_array_equal(cat.iter_vectors("people")[1], _fixture_module().v2_vectors())
        assert faces.plaintext_count(cat.connection()) == 0


def test_a_deleted_face_leaves_no_copy_of_its_sealed_vector_in_the_file(
        catalog: Catalog, collection: str, make_face: FaceFactory, data_dir: Path) -> None:
    faces = [make_face() for _ in range(3)]
    with catalog.transaction() as tx:
        catalog.add_faces(tx, collection, faces)
    conn = catalog.connection()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sealed = conn.execute("SELECT vector FROM faces WHERE face_id = ?", (faces[1]["face_id"],)).fetchone()[0]
    assert sealed in (data_dir / "catalog.db").read_bytes()
    with catalog.transaction() as tx:
        catalog.delete_faces(tx, collection, [faces[1]["face_id"]])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert sealed[16:80] not in raw_bytes(data_dir)  # zeroed (secure_delete), not left in a free page


def test_an_upgraded_catalog_takes_thumbnails_that_go_with_their_face(tmp_path: Path) -> None:
    from faceledger.store.schema import SCHEMA_VERSION

    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    module = _fixture_module()
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256))
    with Catalog.open(data) as cat:
        conn = cat.connection()
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        a, b = module.face_id(2), module.face_id(3)
        with cat.transaction() as tx:
            cat.add_thumbnail(tx, a, "people", jpeg, 1.0, 99.0)
            cat.add_thumbnail(tx, b, "people", jpeg, 1.0, 99.0)
        with pytest.raises(sqlite3.IntegrityError), cat.transaction() as tx:  # the reference holds
            cat.add_thumbnail(tx, "00000000-0000-0000-0000-00000000dead", "people", jpeg, 1.0, 99.0)
        with cat.transaction() as tx:
            cat.delete_faces(tx, "people", [a])
        assert cat.get_thumbnail(a) is None and cat.get_thumbnail(b) == jpeg
        with cat.transaction() as tx:
            cat.delete_collection(tx, "people")
        assert cat.get_thumbnail(b) is None
    with Catalog.open(data) as cat:  # and it opens again as a current catalog
        assert cat.connection().execute("SELECT COUNT(*) FROM thumbnails").fetchone()[0] == 0
