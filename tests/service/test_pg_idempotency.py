"""One ClientRequestToken, two processes, one PostgreSQL: one piece of work, one answer (issue #14).

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
