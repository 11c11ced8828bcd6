"""The console over plain HTTP against a real server: cookies, CSRF, roles, sign-in limits, ledger events.

These need no browser, so they run wherever the e2e tests run.
"""

from __future__ import annotations

import json

from .conftest import Stage, searched
from .web_client import Browserless


def ledger(stage: Stage, operation: str) -> list[dict]:
    out = stage.srv.cli("audit", "show", "--operation", operation, "--limit", "1000", "--json", check=True)
    return json.loads(out.stdout)["records"]


def test_session_cookie_is_httponly_strict_and_scoped(stage: Stage) -> None:
    web = Browserless(stage.srv.endpoint)
    reply = web.sign_in(stage.keys["reviewer-one"])
    assert reply.status == 303 and reply.header("location") == "/console/"
    cookie = next(c for c in reply.set_cookies() if c.startswith("fl_session="))
    flags = [p.strip().lower() for p in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags
    assert "secure" not in flags  # plain HTTP here; over TLS the cookie is Secure
    home = web.request("GET", "/console/")
    assert home.status == 200 and "reviewer-one" in home.body
    assert home.header("cache-control") == "no-store" and "script-src" not in (home.header("content-security-policy") or "x")
    signins = [r for r in ledger(stage, "ConsoleSignIn") if r["principal"] == stage.keys["reviewer-one"][0]]
    assert signins and signins[-1]["details"]["role"] == "reviewer"


def test_post_without_or_with_a_wrong_csrf_token_is_refused(stage: Stage) -> None:
    search_id, candidates = searched(stage.srv, stage.keys["searcher"])
    web = Browserless(stage.srv.endpoint)
    web.sign_in(stage.keys["reviewer-two"])
    before = len(ledger(stage, "ReviewCandidate"))
    form = {"candidate": candidates[0], "decision": "CONFIRM", "reason": "forged"}
    assert web.request("POST", f"/console/review/{search_id}", form).status == 403
    assert web.request("POST", f"/console/review/{search_id}", {**form, "csrf": "x" * 43}).status == 403
    assert len(ledger(stage, "ReviewCandidate")) == before
    # the same form with the session's token goes through ReviewCandidate
    token = web.request("GET", f"/console/review/{search_id}").field("csrf")
    ok = web.request("POST", f"/console/review/{search_id}", {**form, "reason": "same person", "csrf": token})
    assert ok.status == 303, ok.body
    assert len(ledger(stage, "ReviewCandidate")) == before + 1


def test_cross_site_post_is_refused_even_with_the_token(stage: Stage) -> None:
    web = Browserless(stage.srv.endpoint)
    web.sign_in(stage.keys["second-admin"])
    token = web.request("GET", "/console/").field("csrf")
    reply = web.request("POST", "/console/halt", {"csrf": token, "reason": "x"},
                        headers={"Origin": "http://evil.example"})
    assert reply.status == 403 and "another site" in reply.body
    status = json.loads(stage.srv.cli("status", "--json", check=True).stdout)
    assert status["Halted"] is False


def test_signin_form_needs_its_own_token(stage: Stage) -> None:
    web = Browserless(stage.srv.endpoint)
    key = stage.keys["auditor"]
    reply = web.request("POST", "/console/signin", {"token": "guess", "access_key_id": key[0],
                                                    "secret_access_key": key[1]})
    assert reply.status == 403 and "fl_session" not in web.cookies


def test_roles_are_enforced_on_forged_requests(stage: Stage) -> None:
    web = Browserless(stage.srv.endpoint)
    web.sign_in(stage.keys["auditor"])
    token = web.request("GET", "/console/").field("csrf")
    # an auditor may read the review page but not decide, and may not halt
    assert web.request("GET", f"/console/review/{stage.search_id}").status == 200
    decide = web.request("POST", f"/console/review/{stage.search_id}",
                         {"csrf": token, "candidate": stage.candidates[0], "decision": "CONFIRM", "reason": "r"})
    assert decide.status == 403
    assert web.request("POST", "/console/halt", {"csrf": token, "reason": "r"}).status == 403


def test_signout_is_recorded_and_the_old_cookie_is_dead(stage: Stage) -> None:
    web = Browserless(stage.srv.endpoint)
    web.sign_in(stage.keys["auditor"])
    old = dict(web.cookies)
    token = web.request("GET", "/console/").field("csrf")
    assert web.request("POST", "/console/signout", {"csrf": token}).status == 303
    web.cookies = old  # replaying the cookie after sign-out
    assert web.request("GET", "/console/audit").status == 303
    outs = [r for r in ledger(stage, "ConsoleSignOut") if r["principal"] == stage.keys["auditor"][0]]
    assert outs and outs[-1]["details"]["ended"] == "sign-out"


def test_failed_signins_are_recorded_and_rate_limited(stage: Stage) -> None:
    """Runs last in this module: it locks sign-in out for this address (limit 4 in the fixture)."""
    key = stage.keys["reviewer-one"]
    web = Browserless(stage.srv.endpoint)
    for _ in range(4):
        assert web.sign_in((key[0], "Not-The-Secret-123")).status == 403
    locked = web.sign_in(key)  # the right secret, but too many failures first
    assert locked.status == 429 and "Too many failed sign-ins" in locked.body and "fl_session" not in web.cookies
    failures = [r["details"] for r in ledger(stage, "ConsoleSignInFailed") if r["details"].get("access_key_id") == key[0]]
    assert [f["reason"] for f in failures][-5:] == ["wrong-secret"] * 4 + ["rate-limited"]
    assert "Not-The-Secret-123" not in json.dumps(failures)  # the key id tried, never the secret
