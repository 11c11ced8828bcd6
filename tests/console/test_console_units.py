"""Fast tests of the console's parts: sessions and their expiry, sign-in rules, the queue, charts."""

from __future__ import annotations

import pytest

from faceledger.console.auth import _safe_next
from faceledger.console.charts import bar_chart, line_chart
from faceledger.console.sessions import Sessions
from faceledger.errors import AccessDeniedError, InvalidParameterError, ThrottlingError
from faceledger.service.queue import review_queue
from faceledger.service.signin import FailureWindow, SignIn, session_ref

from ..service.conftest import principal, service  # noqa: F401  (fixture)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_ends_when_idle_and_at_its_absolute_limit() -> None:
    clock = Clock()
    s = Sessions(idle_s=60, max_s=300, clock=clock)
    a = s.open(s.new_id(), "AKIAA")
    for _ in range(4):  # used every 50 s: never idle ...
        clock.now += 50
        assert s.get(a.id) == (a, None)
    clock.now += 100  # ... but 300 s after sign-in it ends anyway
    assert s.get(a.id) == (a, "expired") and s.get(a.id) == (None, None)
    b = s.open(s.new_id(), "AKIAB")
    clock.now += 61
    assert s.get(b.id) == (b, "idle") and s.get(b.id) == (None, None)
    assert s.get("not-a-session") == (None, None) and s.get(None) == (None, None)


def test_csrf_token_is_per_session_and_compared_exactly() -> None:
    s = Sessions(60, 300)
    a, b = s.open(s.new_id(), "K"), s.open(s.new_id(), "K")
    assert a.csrf != b.csrf and a.csrf_ok(a.csrf)
    assert not a.csrf_ok(b.csrf) and not a.csrf_ok("") and not a.csrf_ok(None) and not a.csrf_ok(a.csrf[:-1])


def test_failure_window_slides() -> None:
    clock = Clock()
    w = FailureWindow(limit=2, window_s=10, clock=clock)
    w.fail("k")
    clock.now += 6
    w.fail("k")
    assert w.locked("k") and not w.locked("other")
    clock.now += 5  # the first failure left the window
    assert not w.locked("k")


def test_sign_in_checks_the_secret_and_records_every_outcome(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with service.catalog.transaction() as tx:
        key_id, secret = service.catalog.create_key(tx, "reviewer", "rev", None)
        gone_id, gone_secret = service.catalog.create_key(tx, "reviewer", "old", None)
        service.catalog.revoke_key(tx, gone_id)
    signin = SignIn(service)
    with pytest.raises(AccessDeniedError):
        signin.sign_in(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"), "10.0.0.1", "s1")
    with pytest.raises(AccessDeniedError):
        signin.sign_in(gone_id, gone_secret, "10.0.0.1", "s2")
    with pytest.raises(AccessDeniedError):
        signin.sign_in("AKIANOSUCHKEY0000000", secret, "10.0.0.1", "s3")
    with pytest.raises(InvalidParameterError):
        signin.sign_in("", "", "10.0.0.1", "s4")
    p = signin.sign_in(key_id, secret, "10.0.0.1", "session-id-5")
    assert p.access_key_id == key_id and p.role == "reviewer"
    signin.sign_out(key_id, "10.0.0.1", "session-id-5", "sign-out")
    records = [r for r in service.ledger.iter_all() if r["operation"].startswith("Console")]
    assert [(r["operation"], r["details"].get("reason")) for r in records] == [
        ("ConsoleSignInFailed", "wrong-secret"), ("ConsoleSignInFailed", "revoked"),
        ("ConsoleSignInFailed", "unknown-key"), ("ConsoleSignInFailed", "malformed"),
        ("ConsoleSignIn", None), ("ConsoleSignOut", None)]
    assert records[4]["details"]["session"] == records[5]["details"]["session"] == session_ref("session-id-5")
    assert "session-id-5" not in str(records) and secret not in str(records)


def test_too_many_failures_lock_sign_in_out(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with service.catalog.transaction() as tx:
        key_id, secret = service.catalog.create_key(tx, "auditor", None, None)
    signin = SignIn(service)  # default: 5 failures per 300 s
    for _ in range(5):
        with pytest.raises(AccessDeniedError):
            signin.sign_in(key_id, "wrong", "10.0.0.9", "s")
    with pytest.raises(ThrottlingError):
        signin.sign_in(key_id, secret, "10.0.0.8", "s")  # locked by key id, from any address
    with pytest.raises(ThrottlingError):
        signin.sign_in("AKIAOTHER00000000000", "x", "10.0.0.9", "s")  # locked by address, for any key


def _search(service, seq_purpose: str, candidates: list[str], collection: str = "c1") -> int:  # type: ignore[no-untyped-def]  # noqa: F811
    """A search's ledger record, written as every search writes it (Service.record)."""
    from faceledger.service.context import RequestContext
    from faceledger.service.core import Call

    call = Call("SearchFacesByImage", {}, principal("searcher"), RequestContext(purpose=seq_purpose))
    with service.catalog.transaction() as tx:
        rec = service.record(tx, call, collection, {
            "confirmations_required": 1, "candidates": [{"FaceId": c, "Similarity": 90.0} for c in candidates]})
    return int(rec["seq"])


def test_queue_lists_undecided_searches_oldest_first_within_the_key_scope(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    first = _search(service, "general", ["f1", "f2"])
    second = _search(service, "fraud", ["f3"], "c2")
    _search(service, "general", [])  # no candidates: nothing to review
    reviewer = principal("reviewer")
    assert [i["SearchId"] for i in review_queue(service, reviewer)] == [first, second]
    assert [i["SearchId"] for i in review_queue(service, reviewer, purpose="fraud")] == [second]
    assert [i["SearchId"] for i in review_queue(service, reviewer, collection_id="c1")] == [first]
    with service.catalog.transaction() as tx:
        service.catalog.add_review(tx, second, "f3", reviewer.access_key_id, "REJECT", "no", 1.0)
    assert [i["SearchId"] for i in review_queue(service, reviewer)] == [first]
    bound = type(reviewer)("AKIABOUND00000000000", "x", "reviewer", defaults={"purpose": "fraud"})
    assert review_queue(service, bound) == []  # its only search is decided
    with pytest.raises(AccessDeniedError):
        review_queue(service, bound, purpose="general")
    with pytest.raises(AccessDeniedError):
        review_queue(service, principal("searcher"))


def test_next_after_sign_in_stays_in_the_console() -> None:
    assert _safe_next("/console/review/4?x=1") == "/console/review/4?x=1"
    for bad in ("https://evil.example/", "//evil.example/console/", "/consolex", "/console/\\evil", None, ""):
        assert _safe_next(bad) == "/console/"


def test_charts_escape_labels_and_handle_no_data() -> None:
    svg = str(bar_chart("Refusals <b>", [("<script>alert(1)</script>", 3.0)]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "Refusals &lt;b&gt;" in svg
    assert "no data" in str(bar_chart("x", [])) and "no data" in str(line_chart("x", [("s", [])], x_label="a",
                                                                                y_label="b"))
    line = str(line_chart("DET", [("d", [(1e-6, 0.1), (1e-3, 0.01), (0.0, 0.5)])], x_label="FMR", y_label="FNMR",
                          x_log=True, y_log=True))
    assert line.count("L") >= 1 and "1e-6" in line and "1e-3" in line  # the zero is dropped on a log axis


# -- the console app in-process, over a real service --------------------------------------------

def _app(svc):  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette

    from faceledger.console import console_mount

    mount = console_mount(svc)
    return Starlette(routes=[mount]), mount.console


def _signed_in(app, key: tuple[str, str], scheme: str = "http") -> dict[str, str]:  # type: ignore[no-untyped-def]
    import re

    from .asgi import call

    page = call(app, "GET", "/console/signin", scheme=scheme)
    token = re.search(rb'name="token" value="([^"]+)"', page.body).group(1).decode()  # type: ignore[union-attr]
    reply = call(app, "POST", "/console/signin", cookies={"fl_signin": token}, scheme=scheme,
                 form={"token": token, "access_key_id": key[0], "secret_access_key": key[1], "next": "/console/"})
    assert reply.status == 303, reply.body
    cookie = next(c for c in reply.headers["set-cookie"] if c.startswith("fl_session="))
    return {"fl_session": cookie.split(";")[0].split("=", 1)[1], "_raw": cookie}


def test_session_cookie_is_secure_over_tls(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with service.catalog.transaction() as tx:
        key = service.catalog.create_key(tx, "auditor", None, None)
    app, _ = _app(service)
    assert "; secure" in _signed_in(app, key, scheme="https")["_raw"].lower()
    assert "; secure" not in _signed_in(app, key, scheme="http")["_raw"].lower()


def test_an_idle_session_ends_and_the_ledger_says_so(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from .asgi import call

    with service.catalog.transaction() as tx:
        key = service.catalog.create_key(tx, "auditor", None, None)
    app, console = _app(service)
    clock = Clock()
    console.sessions._clock = clock
    cookies = _signed_in(app, key)
    cookies.pop("_raw")
    assert call(app, "GET", "/console/audit", cookies=cookies).status == 200
    clock.now += service.settings.console_session_idle_s + 1
    ended = call(app, "GET", "/console/audit", cookies=cookies)
    assert ended.status == 303 and "ended=1" in (ended.first("location") or "")
    outs = [r for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignOut"]
    assert [(r["principal"], r["details"]["ended"]) for r in outs] == [(key[0], "idle")]


def test_revoking_a_key_ends_its_console_session(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from .asgi import call

    with service.catalog.transaction() as tx:
        key = service.catalog.create_key(tx, "auditor", None, None)
    app, _ = _app(service)
    cookies = _signed_in(app, key)
    cookies.pop("_raw")
    assert call(app, "GET", "/console/", cookies=cookies).status == 200
    with service.catalog.transaction() as tx:
        service.catalog.revoke_key(tx, key[0])
    assert call(app, "GET", "/console/", cookies=cookies).status == 303
    assert call(app, "GET", "/console/", cookies=cookies).status == 303
    outs = [r for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignOut"]
    assert [(r["principal"], r["details"]["ended"]) for r in outs] == [(key[0], "revoked")]  # once


def test_a_session_that_ends_unseen_still_gets_its_sign_out_record(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """A browser that never comes back: its idle session is dropped at the next sign-in, and the ledger says so."""
    with service.catalog.transaction() as tx:
        gone = service.catalog.create_key(tx, "auditor", None, None)
        later = service.catalog.create_key(tx, "reviewer", None, None)
    app, console = _app(service)
    clock = Clock()
    console.sessions._clock = clock
    _signed_in(app, gone)
    clock.now += service.settings.console_session_idle_s + 1
    _signed_in(app, later)
    outs = [r for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignOut"]
    ins = [r for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignIn"]
    assert [(r["principal"], r["details"]["ended"]) for r in outs] == [(gone[0], "idle")]
    assert outs[0]["details"]["session"] == ins[0]["details"]["session"]


def test_signing_in_again_replaces_the_old_session(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import re

    from .asgi import call

    with service.catalog.transaction() as tx:
        key = service.catalog.create_key(tx, "auditor", None, None)
    app, _ = _app(service)
    first = _signed_in(app, key)
    first.pop("_raw")
    page = call(app, "GET", "/console/signin")
    token = re.search(rb'name="token" value="([^"]+)"', page.body).group(1).decode()  # type: ignore[union-attr]
    again = call(app, "POST", "/console/signin", cookies={"fl_signin": token, **first},
                 form={"token": token, "access_key_id": key[0], "secret_access_key": key[1]})
    assert again.status == 303
    assert call(app, "GET", "/console/", cookies=first).status == 303  # the old session id is dead
    outs = [r["details"]["ended"] for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignOut"]
    assert outs == ["replaced"]


def test_bad_input_gets_a_4xx_page_not_a_500(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Ledger positions beyond SQLite's integers, and forms with files or a broken multipart body."""
    from .asgi import call

    with service.catalog.transaction() as tx:
        key = service.catalog.create_key(tx, "admin", None, None)
    app, _ = _app(service)
    cookies = _signed_in(app, key)
    cookies.pop("_raw")
    huge = "9" * 25
    assert call(app, "GET", f"/console/audit/{huge}", cookies=cookies).status == 404
    assert call(app, "GET", f"/console/audit?after={huge}", cookies=cookies).status == 400
    with_file = (b'--XX\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhello\r\n--XX--\r\n')
    for body, ctype in ((with_file, "multipart/form-data; boundary=XX"), (b"garbage", "multipart/form-data")):
        for path in ("/console/halt", "/console/signin"):
            reply = call(app, "POST", path, cookies=cookies, body=body, content_type=ctype)
            assert reply.status == 400 and b"form could not be read" in reply.body, (path, reply.status)
    assert service.halted() is None


def test_failure_window_holds_only_recent_failures_and_a_bounded_number_of_names() -> None:
    """Sign-in attempts under made-up key ids must not grow the server's memory without end."""
    clock = Clock()
    w = FailureWindow(limit=3, window_s=10, clock=clock, max_tracked=50)
    for i in range(500):  # checking a name that never failed holds nothing
        assert not w.locked(f"key:AKIA{i}", "addr:10.0.0.1")
    assert w.tracked() == 0
    for i in range(500):
        w.fail(f"key:AKIA{i}", "addr:10.0.0.1")
    assert w.tracked() <= 50
    assert w.locked("addr:10.0.0.1")  # the address that kept failing is the last one forgotten
    w.fail("key:target", "addr:10.0.0.2")
    clock.now += 11  # every failure left the window: checking forgets them
    assert not w.locked("key:target", "addr:10.0.0.2") and w.tracked() <= 49
    for _ in range(3):
        w.fail("key:target")
    assert w.locked("key:target")  # the limit still holds


def test_a_secret_typed_into_the_key_id_field_is_not_written_to_the_ledger(service) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import hashlib

    with service.catalog.transaction() as tx:
        key_id, secret = service.catalog.create_key(tx, "reviewer", None, None)
    signin = SignIn(service)
    with pytest.raises(AccessDeniedError):  # the secret in the key id field, the key id in the secret's
        signin.sign_in(secret, key_id, "10.0.0.1", "s1")
    with pytest.raises(InvalidParameterError):  # the secret in the key id field, nothing else
        signin.sign_in(secret, "", "10.0.0.1", "s2")
    with pytest.raises(AccessDeniedError):  # a mistyped key id is still named: it is shaped like one
        signin.sign_in("AKIA" + "Z" * 16, secret, "10.0.0.1", "s3")
    failures = [r["details"] for r in service.ledger.iter_all() if r["operation"] == "ConsoleSignInFailed"]
    assert secret not in str(failures) and secret.strip() not in str(failures)
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    assert [f.get("access_key_id_sha256") for f in failures[:2]] == [digest, digest]
    assert failures[2]["access_key_id"] == "AKIA" + "Z" * 16


@pytest.mark.parametrize(("first_bad", "headline"), [(None, "Catalog DAMAGED: "), (7, "Ledger BROKEN at record 7: ")])
def test_verify_page_names_a_damaged_catalog_and_the_last_intact_record(first_bad: int | None,
                                                                        headline: str) -> None:
    """An intact ledger in a catalog failing integrity_check read 'Ledger BROKEN at record None'."""
    from pathlib import Path

    from jinja2 import Environment, FileSystemLoader

    import faceledger.console

    env = Environment(loader=FileSystemLoader(Path(faceledger.console.__file__).parent / "templates"),
                      autoescape=True)
    env.filters["utc"] = str
    verdict = {"ok": False, "first_bad_seq": first_bad, "reason": "why", "checked": 6, "head_hash": "ab" * 32,
               "last_intact": {"seq": 6, "operation": "CreateCollection"}, "checkpoints": 1, "last_signed_seq": 5}
    html = env.get_template("verify.html").render(v=verdict, nav=[], path="/console/audit/verify")
    assert f'id="verify-result">{headline}why' in html and "#6 (CreateCollection)" in html
