"""The PostgreSQL catalog (issue #14): a real server (tests/conftest.py's pg_server), real psycopg."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from faceledger.errors import (
    IntegrityFailedError,
    InvalidParameterError,
    ResourceAlreadyExistsError,
    StoreUnavailableError,
)
from faceledger.settings import Settings
from faceledger.store import pg_integrity
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger
from faceledger.store.opening import open_catalog, parse
from faceledger.store.pg_db import PgDatabase, translate
from faceledger.store.sealing import SealError


def face(**kw: object) -> dict:
    return {"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()), "confidence": 99.0,
            "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1},
            "vector": np.random.default_rng().standard_normal(128).astype(np.float32), **kw}


@pytest.fixture
def catalog(tmp_path, pg_url):  # type: ignore[no-untyped-def]
    cat = Catalog.open_postgres(tmp_path / "data", pg_url)
    yield cat
    cat.close()


def test_placeholders_translate_and_literal_percent_survives() -> None:
    assert translate("SELECT ? , '%' || ?") == "SELECT %s , '%%' || %s"


def test_rows_read_by_name_and_by_position(catalog) -> None:  # type: ignore[no-untyped-def]
    row = catalog.connection().execute("SELECT 1 AS one, 'x' AS two").fetchone()
    assert row["one"] == row[0] == 1 and row["two"] == row[1] == "x" and row.keys() == ["one", "two"]
    one, two = row
    assert (one, two) == (1, "x")


def test_a_face_and_its_vector_round_trip_and_counters_follow(catalog) -> None:  # type: ignore[no-untyped-def]
    f = face(extra={"consent_id": "c-1"})
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c", "m", {"k": "v"}, time.time())
        catalog.add_faces(tx, "c", [f])
        assert catalog.get_collection("c")["face_count"] == 1  # the transaction's own write is visible to it
    got = catalog.get_faces("c", [f["face_id"]], with_vectors=True)[0]
    assert np.array_equal(got["vector"], f["vector"]) and got["extra"] == {"consent_id": "c-1"}
    ids, matrix = catalog.iter_vectors("c")
    assert ids == [f["face_id"]] and matrix.shape == (1, 128) and matrix.dtype == np.float32
    assert catalog.faces_with_consent("c-1") == [("c", f["face_id"])]
    assert catalog.faces_with_consents(["c-1", "c-2"]) == [("c", f["face_id"], "c-1")]
    with pytest.raises(ResourceAlreadyExistsError), catalog.transaction() as tx:
        catalog.add_faces(tx, "c", [face(face_id=f["face_id"])])
    with catalog.transaction() as tx:
        assert catalog.delete_faces(tx, "c", [f["face_id"]]) == [f["face_id"]]
    assert catalog.get_collection("c")["face_count"] == 0


def test_a_failed_transaction_leaves_nothing(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError), catalog.transaction() as tx:
        catalog.create_collection(tx, "gone", "m", {}, time.time())
        Ledger(catalog).append(tx, operation="CreateCollection", principal=None, collection_id="gone", details={})
        raise RuntimeError("boom")
    assert catalog.list_collections(None, 10) == [] and Ledger(catalog).head() is None


def test_the_ledger_is_append_only_in_postgresql_too(catalog, pg_url) -> None:  # type: ignore[no-untyped-def]
    with catalog.transaction() as tx:
        Ledger(catalog).append(tx, operation="X", principal=None, collection_id=None, details={"a": 1})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in ("UPDATE ledger SET operation = 'Y'", "DELETE FROM ledger", "TRUNCATE ledger"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)


def test_details_round_trip_byte_for_byte_so_the_chain_verifies(catalog) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(catalog)
    with catalog.transaction() as tx:
        for details in ({"f": 0.1 + 0.2, "u": "é\u2028", "n": None}, {"big": 2**53 + 1, "neg": -1e-300}):
            ledger.append(tx, operation="X", principal="p", collection_id=None, details=details, at=time.time())
    result = ledger.verify()
    assert result.ok and result.checked == 2


def test_the_master_key_of_another_data_directory_is_refused(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    Catalog.open_postgres(tmp_path / "a", pg_url).close()
    with pytest.raises(SealError, match="master.key"):  # a data dir without the key never makes a new one
        Catalog.open_postgres(tmp_path / "b", pg_url)


def test_store_urls() -> None:
    assert parse("", "/d").target == "/d/catalog.db" and not parse("", "/d").is_postgres
    assert parse("sqlite:///tmp/x.db").target == "/tmp/x.db"
    assert parse("postgresql://u:pw@h/db").is_postgres and "pw" not in str(parse("postgresql://u:pw@h/db"))
    for bad in ("mysql://h/db", "sqlite://relative.db", "/just/a/path"):
        with pytest.raises(InvalidParameterError, match="FACELEDGER_STORE"):
            parse(bad)


def test_sqlite_url_names_the_catalog_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "elsewhere" / "cat.db"
    file.parent.mkdir()
    settings = Settings(data_dir=tmp_path / "data", store=f"sqlite://{file}")
    with open_catalog(settings) as cat:
        assert cat.dialect == "sqlite"
    assert file.is_file() and not (tmp_path / "data" / "catalog.db").exists()


def test_an_unreachable_store_is_a_retryable_error_not_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from faceledger.evaluation.server import free_port

    with pytest.raises(StoreUnavailableError) as exc:
        PgDatabase(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    assert exc.value.http_status == 503 and exc.value.code == "ServiceUnavailableException"


def test_the_startup_check_finds_drifted_counters_and_ledger_gaps(catalog, pg_url) -> None:  # type: ignore[no-untyped-def]
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c", "m", {}, time.time())
        catalog.add_faces(tx, "c", [face()])
        for _ in range(3):
            Ledger(catalog).append(tx, operation="X", principal=None, collection_id=None, details={})
    assert pg_integrity.problems(pg_url, "full") == []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE collections SET face_count = 7")
        conn.execute("ALTER TABLE ledger DISABLE TRIGGER USER")
        conn.execute("DELETE FROM ledger WHERE seq = 2")
    found = pg_integrity.problems(pg_url, "quick")
    assert any("face_count 7 but 1 rows" in p for p in found) and any("records are missing" in p for p in found)
    with pytest.raises(IntegrityFailedError) as exc:
        pg_integrity.refuse_damaged(pg_url, "full")
    assert exc.value.exit_code == 13


# -- several processes write at once: still one linear chain ---------------------------------------------

def _writer(data_dir: str, url: str, n: int, tag: int, start: object) -> None:
    cat = Catalog.open_postgres(data_dir, url)
    ledger = Ledger(cat)
    start.wait(timeout=120)  # type: ignore[attr-defined]  # all four write at the same time
    try:
        for i in range(n):
            with cat.transaction() as tx:
                f = face()
                cat.add_faces(tx, f"c{tag}", [f])  # one collection each: nothing but the ledger is shared
                ledger.append(tx, operation="IndexFaces", principal=f"p{tag}", collection_id=f"c{tag}",
                              details={"face_ids": [f["face_id"]], "i": i})
    finally:
        cat.close()


def test_writers_in_four_processes_make_one_linear_chain(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    with Catalog.open_postgres(data, pg_url) as cat, cat.transaction() as tx:
        for t in range(4):
            cat.create_collection(tx, f"c{t}", "m", {}, time.time())
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(str(data), pg_url, 40, t, start)) for t in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Catalog.open_postgres(data, pg_url) as cat:
        records = list(Ledger(cat).iter_all())
        assert [r["seq"] for r in records] == list(range(1, 161))
        assert Ledger(cat).verify().ok
        assert {r["principal"] for r in records} == {"p0", "p1", "p2", "p3"}
        listed = {f["face_id"] for t in range(4) for f in cat.list_faces(f"c{t}", None, 4096)}
        assert listed == {fid for r in records for fid in r["details"]["face_ids"]} and len(listed) == 160
    # and `faceledger audit verify` on that store says so (no SQLite file in the data directory at all)
    env = {**os.environ, "FACELEDGER_STORE": pg_url, "FACELEDGER_DATA_DIR": str(data)}
    done = subprocess.run([sys.executable, "-m", "faceledger.cli.main", "audit", "verify", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    verdict = json.loads(done.stdout)
    assert done.returncode == 0 and verdict["ok"] and verdict["checked"] == 160, done.stdout + done.stderr
    assert not Path(data, "catalog.db").exists()


def _cli(tmp_path: Path, store: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELEDGER_STORE": store, "FACELEDGER_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "faceledger.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_a_bad_or_unreachable_store_is_one_line_with_its_exit_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from faceledger.evaluation.server import free_port

    bad = _cli(tmp_path, "mysql://h/db", "keys", "list")
    assert bad.returncode == 3 and "FACELEDGER_STORE" in bad.stderr and "Traceback" not in bad.stderr
    down = _cli(tmp_path, f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/db", "keys", "list")
    assert down.returncode == 11 and "ServiceUnavailableException" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr and "hunter2" not in down.stderr  # the password is never printed
    assert len(down.stderr.strip().splitlines()) == 1


def _start_service(data_dir: str, url: str, start: object) -> None:
    from faceledger.engine import Engine, EngineSettings
    from faceledger.service import create
    from faceledger.service.workers import EnginePool
    from faceledger.store.vectors import VectorIndex
    from faceledger.testing import FakeDetector, FakeEmbedder

    settings = Settings(data_dir=Path(data_dir), store=url)
    catalog = open_catalog(settings)
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    start.wait(timeout=120)  # type: ignore[attr-defined]
    create(settings, catalog, VectorIndex(), EnginePool(EngineSettings(), engine=engine)).close()


def test_services_starting_together_publish_their_key_and_policy_once(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    Catalog.open_postgres(data, pg_url).close()  # the master key, before four processes share it
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [ctx.Process(target=_start_service, args=(str(data), pg_url, start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Catalog.open_postgres(data, pg_url) as cat:
        ops = [r["operation"] for r in Ledger(cat).iter_all()]
    assert ops.count("SigningKey") == 1 and ops.count("PolicyLoaded") == 1, ops


def test_two_puts_of_one_token_racing_do_not_fail_on_the_key(catalog) -> None:  # type: ignore[no-untyped-def]
    import threading

    first_in = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with catalog.transaction() as tx:
            catalog.idempotent_put(tx, "CreateUser", "tok", "h", {"r": 1})
            first_in.set()
            time.sleep(0.5)  # the second put arrives while this one is uncommitted

    def second() -> None:
        first_in.wait(10)
        try:
            with catalog.transaction() as tx:
                catalog.idempotent_put(tx, "CreateUser", "tok", "h", {"r": 2})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert catalog.idempotent_get("CreateUser", "tok") == ("h", {"r": 1})  # the first answer is the one kept


def test_a_migration_in_place_stages_and_swaps_vectors_of_another_dim(catalog) -> None:  # type: ignore[no-untyped-def]
    """Model packs on PostgreSQL: 192-d cosine vectors staged beside the 128-d ones, then swapped in at once."""
    faces_ = [face(), face()]
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "c", "old-pack", {}, time.time())
        catalog.add_faces(tx, "c", faces_)
    new = {f["face_id"]: np.random.default_rng(1).standard_normal(192).astype(np.float32) for f in faces_}
    first = faces_[0]["face_id"]
    with catalog.transaction() as tx:
        catalog.stage_vectors(tx, "c", "new-pack", 192, [(first, new[first], "thumbnail")], time.time())
        catalog.stage_vectors(tx, "c", "new-pack", 192, [(first, new[first], "thumbnail")], time.time())  # again
    assert catalog.unstaged_faces("c", "new-pack", 10) == [faces_[1]["face_id"]]
    with pytest.raises(Exception, match="has no vector"), catalog.transaction() as tx:
        catalog.swap_staged(tx, "c", "new-pack", 192, "cosine")
    assert catalog.get_collection("c")["model_version"] == "old-pack"
    second = faces_[1]["face_id"]
    with catalog.transaction() as tx:
        catalog.stage_vectors(tx, "c", "new-pack", 192, [(second, new[second], "original:x")], time.time())
        counts = catalog.swap_staged(tx, "c", "new-pack", 192, "cosine")
    assert counts == {"thumbnail": 1, "original": 1}
    coll = catalog.get_collection("c")
    assert (coll["model_version"], coll["dim"], coll["metric"]) == ("new-pack", 192, "cosine")
    ids, matrix = catalog.iter_vectors("c")
    assert matrix.shape == (2, 192)
    for fid, row in zip(ids, matrix, strict=True):
        np.testing.assert_allclose(row, new[fid], rtol=1e-6)

def test_the_password_is_never_echoed_in_any_url_form(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from faceledger.evaluation.server import free_port

    port = free_port()
    # in the query string, in a URL libpq cannot parse (it quotes the bad token), in a Settings repr
    assert "hunter2" not in str(parse(f"postgresql://127.0.0.1:{port}/db?sslmode=disable&password=hunter2"))
    with pytest.raises(InvalidParameterError, match="FACELEDGER_STORE") as bad:
        parse("postgresql://u:hunter2%zz@127.0.0.1/db")
    assert "hunter2" not in str(bad.value)
    assert "hunter2" not in repr(Settings(store="postgresql://u:hunter2@h/db"))
    with pytest.raises(StoreUnavailableError) as down:
        PgDatabase(f"postgresql://postgres@127.0.0.1:{port}/db?password=hunter2")
    assert "hunter2" not in str(down.value)
    for url, code in ((f"postgresql://127.0.0.1:{port}/db?password=hunter2", 11),
                      ("postgresql://u:hunter2%zz@127.0.0.1/db", 3)):
        out = _cli(tmp_path, url, "keys", "list")
        assert out.returncode == code and "hunter2" not in out.stderr + out.stdout, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_counters_are_kept_by_the_writer_not_by_triggers_citus_refuses(catalog, pg_url) -> None:  # type: ignore[no-untyped-def]
    # Citus refuses triggers on distributed tables (unless citus.enable_unsafe_triggers): none on faces/users
    with psycopg.connect(pg_url) as conn:
        triggers = conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                                "AND tgrelid IN ('faces'::regclass, 'users'::regclass)").fetchall()
    # only pgvector's stats triggers remain (store/pg_vectors.py; on Citus it installs without them and the
    # writer calls note_written): no counter trigger, no face change log (PgVectorIndex needs none)
    assert sorted(t[0] for t in triggers) == ["faces_counted_delete", "faces_counted_insert", "faces_vector_changed"]
    batch = [face(), face(), face()]
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "k", "m", {}, time.time())
        catalog.add_faces(tx, "k", batch)
        catalog.create_user(tx, "k", "u1", time.time())
        catalog.create_user(tx, "k", "u2", time.time())
        assert (catalog.get_collection("k")["face_count"], catalog.get_collection("k")["user_count"]) == (3, 2)
    with catalog.transaction() as tx:
        # a face asked for twice and one that does not exist count once and not at all
        ids = [batch[0]["face_id"], batch[0]["face_id"], str(uuid.uuid4())]
        assert catalog.delete_faces(tx, "k", ids) == [batch[0]["face_id"]]
        catalog.delete_user(tx, "k", "u2")
    got = catalog.get_collection("k")
    assert (got["face_count"], got["user_count"]) == (2, 1)
    assert pg_integrity.problems(pg_url, "quick") == []


def test_one_face_associated_to_two_users_by_two_processes_goes_to_one(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    import threading

    one, two = Catalog.open_postgres(tmp_path / "d", pg_url), Catalog.open_postgres(tmp_path / "d", pg_url)
    f = face()
    with one.transaction() as tx:
        one.create_collection(tx, "a", "m", {}, time.time())
        one.add_faces(tx, "a", [f])
        one.create_user(tx, "a", "u1", time.time())
        one.create_user(tx, "a", "u2", time.time())
    first_in = threading.Event()
    results: dict[str, object] = {}

    def associate(cat: Catalog, user: str, hold: bool) -> None:
        with cat.transaction() as tx:
            results[user] = cat.associate_faces(tx, "a", user, [f["face_id"]])
            if hold:
                first_in.set()
                time.sleep(0.6)  # uncommitted while the other process associates the same face

    a = threading.Thread(target=associate, args=(one, "u1", True))
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=associate, args=(two, "u2", False))
    b.start()
    a.join(20)
    b.join(20)
    owner = one.get_faces("a", [f["face_id"]])[0]["user_id"]
    one.close()
    two.close()
    assert owner == "u1"  # the first association stands; it was not silently moved to u2
    assert results["u1"] == ([f["face_id"]], [])
    assert results["u2"] == ([], [{"FaceId": f["face_id"], "UserId": "u1", "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}])


def test_a_user_deleted_while_another_process_associates_a_face_leaves_no_orphan(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    import threading

    one, two = Catalog.open_postgres(tmp_path / "d", pg_url), Catalog.open_postgres(tmp_path / "d", pg_url)
    f = face()
    with one.transaction() as tx:
        one.create_collection(tx, "a", "m", {}, time.time())
        one.add_faces(tx, "a", [f])
        one.create_user(tx, "a", "u1", time.time())
    first_in = threading.Event()

    def associate() -> None:
        with one.transaction() as tx:
            one.associate_faces(tx, "a", "u1", [f["face_id"]])
            first_in.set()
            time.sleep(0.6)  # uncommitted while the other process deletes the user

    a = threading.Thread(target=associate)
    a.start()
    assert first_in.wait(10)
    with two.transaction() as tx:
        two.delete_user(tx, "a", "u1")
    a.join(20)
    owner = one.get_faces("a", [f["face_id"]])[0]["user_id"]
    users = [u["user_id"] for u in one.list_users("a", None, 10)]
    one.close()
    two.close()
    assert owner is None and users == []  # not a face that names a user who no longer exists
