"""Multi-step operations are whole or absent: a failure part-way leaves nothing half-done.

Faults are injected in the real SQLite file (or PostgreSQL database: every test runs on
both stores) with a trigger that aborts one statement (a second connection installs and
drops it), so the service under test runs unchanged: no monkeypatching of its internals.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.errors import ConflictError
from faceledger.service import Principal, Service, open_service
from faceledger.service.workers import EnginePool
from faceledger.testing import FakeDetector, FakeEmbedder, png_bytes, striped_image

from .conftest import both_stores
from .test_operations import run

RED = {"Bytes": png_bytes(striped_image((200, 30, 30)))}
BLUE = {"Bytes": png_bytes(striped_image((30, 30, 200)))}
ADMIN = Principal("AKIAADMIN00000000000", "x", "admin")


pytestmark = both_stores

# what the injected fault surfaces as, on either store
FAULT = (sqlite3.IntegrityError, psycopg.Error)


@contextmanager
def failing(service: Service, table: str, when: str = "1") -> Iterator[None]:
    """While open, any DELETE from ``table`` (matching ``when``) aborts with an injected fault."""
    if service.catalog.dialect == "postgresql":  # type: ignore[attr-defined]
        with _failing_pg(str(service.catalog.path), table, "true" if when == "1" else when):  # type: ignore[attr-defined]
            yield
        return
    conn = sqlite3.connect(service.catalog.path)  # type: ignore[attr-defined]
    conn.execute(f"CREATE TRIGGER injected_fault BEFORE DELETE ON {table} WHEN {when} "
                 "BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
    conn.commit()
    try:
        yield
    finally:
        conn.execute("DROP TRIGGER injected_fault")
        conn.commit()
        conn.close()


@contextmanager
def _failing_pg(url: str, table: str, when: str) -> Iterator[None]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$")
        conn.execute(f"CREATE TRIGGER injected_fault BEFORE DELETE ON {table} FOR EACH ROW WHEN ({when}) "
                     "EXECUTE FUNCTION injected_fault()")
        try:
            yield
        finally:
            conn.execute(f"DROP TRIGGER injected_fault ON {table}")
            conn.execute("DROP FUNCTION injected_fault()")


def enrol(service: Service, cid: str, image: dict, consent: str | None = None) -> str:
    ctx = {"faceledger_headers": {"x-faceledger-consent": consent}} if consent else {}
    out = service.dispatch("IndexFaces", {"CollectionId": cid, "Image": image, "QualityFilter": "NONE"}, ADMIN, ctx)
    return str(out["FaceRecords"][0]["Face"]["FaceId"])


def consent(service: Service) -> str:
    return str(run(service, "CreateConsent", Subject="s-1", NoticeText="notice", NoticeVersion="1",
                   Purpose="general")["Consent"]["ConsentId"])


def matches(service: Service, cid: str, image: dict) -> list[str]:
    out = run(service, "SearchFacesByImage", CollectionId=cid, Image=image)
    return [m["Face"]["FaceId"] for m in out["FaceMatches"]]


def ops(service: Service, operation: str) -> int:
    return len(service.ledger.records(operation=operation, limit=1000))


def test_a_withdrawal_whose_deletion_fails_changes_nothing_and_a_retry_completes(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="m")
    cid = consent(service)
    face = enrol(service, "m", RED, cid)
    with failing(service, "faces"), pytest.raises(FAULT, match="injected fault"):
        run(service, "WithdrawConsent", ConsentId=cid)
    assert service.catalog.get_consent(cid)["withdrawn_at"] is None  # the withdrawal rolled back with it
    assert matches(service, "m", RED) == [face] and service.index.size("m") == 1
    assert ops(service, "WithdrawConsent") == 0 and ops(service, "DeletionReceipt") == 0
    out = run(service, "WithdrawConsent", ConsentId=cid)  # the retry is not "already withdrawn"
    assert out["DeletedFaces"] == 1 and out["Consent"]["WithdrawnAt"]
    assert matches(service, "m", RED) == [] and service.index.size("m") == 0
    assert ops(service, "WithdrawConsent") == 1 and ops(service, "DeletionReceipt") == 1
    with pytest.raises(ConflictError, match="already withdrawn"):
        run(service, "WithdrawConsent", ConsentId=cid)


def withdrawn_but_kept(service: Service) -> tuple[str, str]:
    """The state an earlier faceledger left when it crashed between withdrawal and deletion."""
    run(service, "CreateCollection", CollectionId="m")
    cid = consent(service)
    face = enrol(service, "m", RED, cid)
    with service.catalog.transaction() as tx:
        service.catalog.withdraw_consent(tx, cid, 1_700_000_000.0)
    return cid, face


def test_withdrawing_again_finishes_a_withdrawal_cut_short(service) -> None:  # type: ignore[no-untyped-def]
    cid, face = withdrawn_but_kept(service)
    assert matches(service, "m", RED) == [face]
    assert run(service, "WithdrawConsent", ConsentId=cid)["DeletedFaces"] == 1
    assert matches(service, "m", RED) == []


def test_start_up_finishes_a_withdrawal_cut_short(service) -> None:  # type: ignore[no-untyped-def]
    cid, face = withdrawn_but_kept(service)
    settings = service.settings
    service.close()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    umask = os.umask(0o022)
    reopened = open_service(settings, engines=EnginePool(EngineSettings(), engine=engine))
    os.umask(umask)  # Service.open makes the process umask 077; give the test process its own back
    try:
        assert reopened.index.size("m") == 0 and run(reopened, "ListFaces", CollectionId="m")["Faces"] == []
        receipt = reopened.ledger.records(operation="DeletionReceipt", limit=10)[-1]["details"]
        assert receipt["reason"] == "consent-withdrawn" and receipt["face_ids"] == [face]
        assert receipt["consent_id"] == cid
    finally:
        reopened.close()


def test_a_failed_delete_collection_leaves_it_whole(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="c")
    face = enrol(service, "c", RED)
    run(service, "CreateUser", CollectionId="c", UserId="u1")
    run(service, "AssociateFaces", CollectionId="c", UserId="u1", FaceIds=[face])
    with failing(service, "collections"), pytest.raises(FAULT):
        run(service, "DeleteCollection", CollectionId="c")
    described = run(service, "DescribeCollection", CollectionId="c")
    assert described["FaceCount"] == 1 and described["UserCount"] == 1
    assert matches(service, "c", RED) == [face] and ops(service, "DeleteCollection") == 0
    run(service, "DeleteCollection", CollectionId="c")
    assert service.index.size("c") == 0 and ops(service, "DeleteCollection") == 1


def test_a_failed_delete_user_keeps_the_user_and_its_faces(service) -> None:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="c")
    face = enrol(service, "c", RED)
    run(service, "CreateUser", CollectionId="c", UserId="u1")
    run(service, "AssociateFaces", CollectionId="c", UserId="u1", FaceIds=[face])
    with failing(service, "users"), pytest.raises(FAULT):
        run(service, "DeleteUser", CollectionId="c", UserId="u1", ClientRequestToken="t1")
    assert service.catalog.user_face_ids("c", "u1") == [face] and ops(service, "DeleteUser") == 0
    run(service, "DeleteUser", CollectionId="c", UserId="u1", ClientRequestToken="t1")  # the token was not spent
    assert run(service, "ListUsers", CollectionId="c")["Users"] == []
    assert matches(service, "c", RED) == [face]  # the faces stay, unassociated


def test_a_sweep_that_fails_in_one_collection_deletes_the_others_whole_and_a_rerun_completes(service) -> None:  # type: ignore[no-untyped-def]
    for cid in ("a", "b"):
        run(service, "CreateCollection", CollectionId=cid, Tags={"faceledger:retention-days": "1"})
    old_a, old_b = enrol(service, "a", RED), enrol(service, "b", BLUE)
    with service.catalog.transaction() as tx:  # age both enrolments by two days
        tx.execute("UPDATE faces SET created_at = created_at - 2 * 86400")
    with failing(service, "faces", "old.collection_id = 'b'"), pytest.raises(FAULT):
        run(service, "RetentionSweep")
    assert matches(service, "a", RED) == [] and matches(service, "b", BLUE) == [old_b]
    receipts = service.ledger.records(operation="DeletionReceipt", limit=10)
    assert [(r["collection_id"], r["details"]["face_ids"]) for r in receipts] == [("a", [old_a])]
    assert run(service, "RetentionSweep")["RetentionDeleted"] == 1
    assert matches(service, "b", BLUE) == [] and service.index.size("b") == 0


def test_a_sweep_skips_a_collection_deleted_under_it(service) -> None:  # type: ignore[no-untyped-def]
    from faceledger.service.context import RequestContext
    from faceledger.service.core import Call
    from faceledger.service.retention import delete_with_receipts

    run(service, "CreateCollection", CollectionId="a")
    face = enrol(service, "a", RED)
    call = Call("RetentionSweep", {}, ADMIN, RequestContext(request_id="t"), 0.0)
    # "gone" was listed by the sweep, then deleted before its turn: the rest still go
    assert delete_with_receipts(service, call, [("a", face), ("gone", face)], "retention-expired", {}) == 1
    assert service.index.size("a") == 0


def test_one_sweep_deletes_faces_of_expired_and_of_half_withdrawn_consents_with_the_right_reasons(service) -> None:  # type: ignore[no-untyped-def]
    cid_w, face_w = withdrawn_but_kept(service)
    expiring = str(run(service, "CreateConsent", Subject="s-2", NoticeText="n", NoticeVersion="1",
                       Purpose="general", TermDays=1)["Consent"]["ConsentId"])
    face_e = enrol(service, "m", BLUE, expiring)
    live = consent(service)
    face_l = enrol(service, "m", img_green(), live)
    with service.catalog.transaction() as tx:  # the one-day term ended yesterday
        tx.execute("UPDATE consents SET given_at = given_at - 2 * 86400 WHERE consent_id = ?", (expiring,))
    assert run(service, "RetentionSweep")["ConsentDeleted"] == 2
    receipts = {r["details"]["consent_id"]: (r["details"]["reason"], r["details"]["face_ids"])
                for r in service.ledger.records(operation="DeletionReceipt", limit=10)}
    assert receipts == {cid_w: ("consent-withdrawn", [face_w]), expiring: ("consent-expired", [face_e])}
    assert [f["FaceId"] for f in run(service, "ListFaces", CollectionId="m")["Faces"]] == [face_l]


def img_green() -> dict:
    return {"Bytes": png_bytes(striped_image((30, 200, 30)))}
