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


def test_report_page_prints_counts_as_text_not_python_reprs(stage: Stage) -> None:
    searched(stage.srv, stage.keys["searcher"])  # at least one search with candidates in the period
    web = Browserless(stage.srv.endpoint)
    web.sign_in(stage.keys["auditor"])
    page = web.request("GET", "/console/report")
    assert page.status == 200 and "Candidates returned by purpose:" in page.body
    assert "{&#39;" not in page.body and "{'" not in page.body, page.body[:2000]


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


def test_thumbnails_are_served_to_reviewers_only_uncached_and_sealed_at_rest(stage: Stage) -> None:
    face_id = next(iter(stage.consents))
    seq = stage.member_search_id
    reviewer = Browserless(stage.srv.endpoint)
    reviewer.sign_in(stage.keys["reviewer-one"])
    page = reviewer.request("GET", f"/console/review/{seq}")
    assert f"/console/review/{seq}/probe.jpg" in page.body and f"/face/{face_id}.jpg" in page.body
    images = [reviewer.request("GET", f"/console/review/{seq}/probe.jpg"),
              reviewer.request("GET", f"/console/review/{seq}/face/{face_id}.jpg")]
    for img in images:
        assert img.status == 200 and img.header("content-type") == "image/jpeg"
        assert img.header("cache-control") == "no-store"
    # a face that is not a candidate of this search is not served through it
    assert reviewer.request("GET", f"/console/review/{stage.search_id}/face/{face_id}.jpg").status == 404
    for who in ("auditor", "searcher"):
        other = Browserless(stage.srv.endpoint)
        other.sign_in(stage.keys[who])
        assert other.request("GET", f"/console/review/{seq}/face/{face_id}.jpg").status == 403, who
    assert Browserless(stage.srv.endpoint).request("GET", f"/console/review/{seq}/probe.jpg").status == 303
    # sealed under the master key: no run of the JPEG's bytes is in the database files
    raw = b"".join(p.read_bytes() for p in stage.srv.data_dir.glob("catalog.db*"))
    body = images[1].raw
    assert body[:3] == b"\xff\xd8\xff" and len(body) > 1000
    assert not any(raw.find(body[i:i + 32]) >= 0 for i in range(0, max(1, len(body) - 32), 97))


def test_a_searchfaces_probe_shows_the_enrolled_face_thumbnail(stage: Stage) -> None:
    probe_face = next(iter(stage.consents))
    rek = stage.srv.client(*stage.keys["searcher"])
    seen: dict = {}
    rek.meta.events.register("after-call.rekognition.*", lambda http_response, **_: seen.update(
        json.loads(http_response.content or b"{}").get("Faceledger", {})))
    assert rek.search_faces(CollectionId="members", FaceId=probe_face)["FaceMatches"]
    reviewer = Browserless(stage.srv.endpoint)
    reviewer.sign_in(stage.keys["reviewer-one"])
    page = reviewer.request("GET", f"/console/review/{seen['SearchId']}")
    assert f"/console/review/{seen['SearchId']}/probe.jpg" in page.body
    probe = reviewer.request("GET", f"/console/review/{seen['SearchId']}/probe.jpg")
    direct = reviewer.request("GET", f"/console/review/{stage.member_search_id}/face/{probe_face}.jpg")
    assert probe.status == 200 and probe.raw == direct.raw


def test_thumbnail_tags_are_validated(stage: Stage) -> None:
    from botocore.exceptions import ClientError

    rek = stage.srv.client()
    for tags in ({"faceledger:thumbnails": "yes"}, {"faceledger:thumbnail-retention-days": "forever"}):
        try:
            rek.create_collection(CollectionId="bad-tags", Tags=tags)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidParameterException"
        else:
            raise AssertionError(f"{tags} was accepted")


def test_expired_thumbnails_are_swept_with_a_receipt(stage: Stage) -> None:
    import sqlite3

    face_id = list(stage.consents)[1]
    conn = sqlite3.connect(stage.srv.data_dir / "catalog.db")
    conn.execute("UPDATE thumbnails SET expires_at = 0 WHERE face_id = ?", (face_id,))
    conn.commit()
    conn.close()
    swept = json.loads(stage.srv.cli("retention", "sweep", "--json", check=True).stdout)
    assert swept["ThumbnailsDeleted"] == 1 and swept["RetentionDeleted"] == 0
    receipt = ledger(stage, "DeletionReceipt")[-1]
    assert receipt["details"]["reason"] == "thumbnail-expired"
    assert receipt["details"]["thumbnail_face_ids"] == [face_id] and receipt["collection_id"] == "members"
    reviewer = Browserless(stage.srv.endpoint)
    reviewer.sign_in(stage.keys["reviewer-two"])
    assert reviewer.request("GET", f"/console/review/{stage.member_search_id}/face/{face_id}.jpg").status == 404
    # the face itself is still enrolled: only its picture expired
    assert face_id in [f["FaceId"] for f in stage.srv.client().list_faces(CollectionId="members")["Faces"]]


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

