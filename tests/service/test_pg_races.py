"""Races between two processes on one PostgreSQL (issue #14): idempotency tokens, replays, consent withdrawal.

Each "process" is its own Catalog with its own connection pool on the same database (what two
``faceledger serve`` processes are to the store). The first request is held inside its work, with
nothing committed yet, while the second arrives with the same token: the second must wait for the
first and answer the first's response, not run the work again (two users, two enrolments).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from faceledger.service.context import RequestContext
from faceledger.service.core import Call
from faceledger.service.users import idempotent
from faceledger.store.catalog import Catalog

from .conftest import both_stores, principal


def _call(token: str | None, signature: str | None = None) -> Call:
    params: dict[str, Any] = {"Subject": "s-1"}
    if token:
        params["ClientRequestToken"] = token
    return Call("CreateConsent", params, principal(), RequestContext(signature=signature))


def _race(tmp_path, pg_url, call: Call) -> tuple[list[Any], int]:  # type: ignore[no-untyped-def]
    one = Catalog.open_postgres(tmp_path / "data", pg_url)
    two = Catalog.open_postgres(tmp_path / "data", pg_url)
    first_in_work = threading.Event()
    answers: list[Any] = []

    def request(cat: Catalog, hold: bool) -> None:
        def work(tx: Any) -> dict:
            consent = cat.create_consent(tx, {"subject": "s-1", "notice_text": "n", "notice_version": "1",
                                              "purpose": "p", "given_at": time.time()})
            if hold:
                first_in_work.set()
                time.sleep(0.6)  # uncommitted while the second request arrives
            return {"ConsentId": consent["consent_id"]}

        try:
            answers.append(idempotent(SimpleNamespace(catalog=cat), call, None, work))  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - asserted below
            answers.append(exc)

    a = threading.Thread(target=request, args=(one, True))
    a.start()
    assert first_in_work.wait(10)
    b = threading.Thread(target=request, args=(two, False))
    b.start()
    a.join(20)
    b.join(20)
    count = len(one.list_consents())
    one.close()
    two.close()
    return answers, count


def test_one_token_racing_on_two_processes_does_the_work_once(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    answers, consents = _race(tmp_path, pg_url, _call("tok-1"))
    assert consents == 1, f"the work ran {consents} times for one ClientRequestToken"
    assert len(answers) == 2 and answers[0] == answers[1], answers


def test_one_signed_replay_racing_on_two_processes_does_the_work_once(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    answers, consents = _race(tmp_path, pg_url, _call(None, signature="ab" * 32))
    assert consents == 1, f"the work ran {consents} times for one signed request"
    assert len(answers) == 2 and answers[0] == answers[1], answers


@both_stores
def test_a_value_postgresql_cannot_hold_is_a_400_not_a_500(service) -> None:  # type: ignore[no-untyped-def]
    from faceledger.errors import InvalidParameterError

    from .test_operations import run

    # SQLite keeps a NUL in text; PostgreSQL text cannot hold one (psycopg raises DataError)
    try:
        out = run(service, "CreateConsent", Subject="s\x00-1", NoticeText="n", NoticeVersion="1", Purpose="general")
    except InvalidParameterError as exc:
        assert "NUL" in exc.message
        assert not service.catalog.list_consents()  # nothing half-written
    else:
        assert service.catalog.dialect == "sqlite" and out["Consent"]["Subject"] == "s\x00-1"


def _service(settings: Any) -> Any:
    from faceledger.engine import Engine, EngineSettings
    from faceledger.service import create
    from faceledger.service.workers import EnginePool
    from faceledger.store.opening import open_catalog
    from faceledger.store.vectors import VectorIndex
    from faceledger.testing import FakeDetector, FakeEmbedder

    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    return create(settings, open_catalog(settings), VectorIndex(), EnginePool(EngineSettings(), engine=engine))


def test_a_withdrawal_racing_an_enrolment_on_another_process_deletes_its_face(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    from faceledger.settings import Settings

    from .test_atomicity import RED, consent, enrol
    from .test_operations import run

    settings = Settings(data_dir=tmp_path / "data", store=pg_url)
    settings.data_dir.mkdir()
    one, two = _service(settings), _service(settings)
    try:
        run(one, "CreateCollection", CollectionId="m")
        cid = consent(one)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            # the enrolment's face insert takes a while: the withdrawal arrives on the other process meanwhile
            conn.execute("CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS "
                         "$$ BEGIN PERFORM pg_sleep(1.0); RETURN NEW; END $$")
            conn.execute("CREATE TRIGGER slow_insert BEFORE INSERT ON faces FOR EACH ROW "
                         "EXECUTE FUNCTION slow_insert()")
            outcome: list[Any] = []

            def enrolment() -> None:
                try:
                    outcome.append(enrol(one, "m", RED, consent=cid))
                except BaseException as exc:  # noqa: BLE001 - asserted below
                    outcome.append(exc)

            a = threading.Thread(target=enrolment)
            a.start()
            deadline = time.monotonic() + 20
            while not conn.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone():
                assert time.monotonic() < deadline, "the enrolment never reached its insert"
                time.sleep(0.02)
            withdrawn = run(two, "WithdrawConsent", ConsentId=cid)
            a.join(30)
            conn.execute("DROP TRIGGER slow_insert ON faces")
        assert one.catalog.faces_with_consent(cid) == [], (outcome, withdrawn)  # no face outlives its consent
        assert withdrawn["DeletedFaces"] == (0 if isinstance(outcome[0], BaseException) else 1), (outcome, withdrawn)
    finally:
        one.close()
        two.close()
