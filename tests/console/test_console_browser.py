"""The console in a real browser (Debian's Chromium, headless, via Playwright) against a real server.

A searcher's search creates candidates; reviewers confirm and reject them with
reasons, a second reviewer completes a two-person confirmation, an auditor
finds the records in the ledger page and verifies the chain, a searcher is
kept out of the review pages, a forged POST is refused, halting shows a
banner, and sign-out ends the session. Screenshots of each page go to
artifacts/console/ (gitignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Stage, searched

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium; see .ci/run)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(browser: Any, stage: Stage, who: str) -> Any:
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    page.goto(stage.base + "/")
    assert "/console/signin" in page.url
    key = stage.keys[who] if who != "admin" else (stage.srv.key, stage.srv.secret)
    page.get_by_label("Access key id").fill(key[0])
    page.get_by_label("Secret access key").fill(key[1])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(stage.base + "/")
    return page


def ledger(stage: Stage, operation: str) -> list[dict]:
    out = stage.srv.cli("audit", "show", "--operation", operation, "--limit", "1000", "--json", check=True)
    return json.loads(out.stdout)["records"]


def candidate(page: Any, n: int) -> Any:
    return page.locator(f"#cand-{n}")


def test_reviewer_confirms_one_candidate_and_rejects_another(browser: Any, stage: Stage) -> None:
    page = browser.new_context().new_page()
    page.goto(stage.base + "/signin")
    shot(page, "01-signin")
    page.close()
    page = sign_in(browser, stage, "reviewer-one")
    shot(page, "02-home-reviewer")
    page.get_by_role("link", name="Review queue").first.click()
    row = page.locator("#queue tr", has_text=f"#{stage.search_id} SearchFacesByImage")
    assert "investigative-lead" in row.inner_text() and "CASE-7" in row.inner_text()
    shot(page, "03-review-queue")
    row.get_by_role("link").click()
    page.wait_for_url(f"{stage.base}/review/{stage.search_id}")
    assert "Candidates are leads for human review, not identifications." in page.inner_text("main")
    assert page.inner_text("#gallery") == "4" and page.inner_text("#purpose") == "investigative-lead"
    assert page.inner_text("#case") == "CASE-7" and "two-person" in page.inner_text("#rule")
    assert float(page.inner_text("#expected-false")) <= 0.001 + 1e-12
    assert page.inner_text("#threshold").split()[0] != "-"
    shot(page, "04-search-before")
    first, second = candidate(page, 1), candidate(page, 2)
    assert {first.get_attribute("data-candidate"), second.get_attribute("data-candidate")} == set(stage.candidates)
    first.get_by_label("Reason for your decision").fill("Same scar above the left eyebrow; case file photo 3.")
    first.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#done")
    assert "PENDING (1 of 2" in candidate(page, 1).inner_text()  # two-person: one confirmation is not enough
    candidate(page, 2).get_by_label("Reason for your decision").fill("Different ear shape; not the same person.")
    candidate(page, 2).get_by_role("button", name="Reject").click()
    page.wait_for_selector("#done")
    assert "REJECTED" in candidate(page, 2).inner_text()
    shot(page, "05-search-after-decisions")
    decisions = [r["details"] for r in ledger(stage, "ReviewCandidate") if r["details"]["search_seq"] == stage.search_id]
    assert [(d["decision"], d["reason"][:4]) for d in decisions] == [("CONFIRM", "Same"), ("REJECT", "Diff")]


def test_reason_is_required(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "reviewer-two")
    page.goto(f"{stage.base}/review/{stage.search_id}")
    before = len(ledger(stage, "ReviewCandidate"))
    reason = candidate(page, 1).get_by_label("Reason for your decision")
    reason.fill("   ")
    candidate(page, 1).get_by_role("button", name="Confirm").click()
    # whitespace passes the browser's `required`; the service refuses it and says why
    assert "Reason is required" in page.inner_text("#error-message")
    assert len(ledger(stage, "ReviewCandidate")) == before


def test_second_reviewer_completes_the_two_person_confirmation(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "reviewer-two")
    page.goto(stage.base + "/review")
    assert "1 awaiting a second reviewer" in page.locator("#queue tr", has_text=f"#{stage.search_id} ").inner_text()
    page.goto(f"{stage.base}/review/{stage.search_id}")
    assert candidate(page, 2).locator("form").count() == 0  # rejected: nothing left to decide
    candidate(page, 1).get_by_label("Reason for your decision").fill("Agree: scar and hairline match.")
    candidate(page, 1).get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#done")
    assert "CONFIRMED (2 of 2" in candidate(page, 1).inner_text()
    shot(page, "06-search-two-person-confirmed")
    page.goto(stage.base + "/review")
    assert page.locator("#queue tr", has_text=f"#{stage.search_id} ").count() == 0


def loaded(page: Any, selector: str) -> list[int]:
    """naturalWidth of every matching image (0 for one that did not load)."""
    return page.eval_on_selector_all(selector, "els => els.map(e => e.complete ? e.naturalWidth : 0)")


def test_thumbnails_show_and_a_withdrawn_face_loses_its_own(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "reviewer-one")
    page.goto(f"{stage.base}/review/{stage.member_search_id}")
    assert loaded(page, "img.probe") and all(loaded(page, "img.probe"))
    assert len(loaded(page, "img.face")) == 2 and all(w > 0 for w in loaded(page, "img.face"))
    shot(page, "15-search-with-thumbnails")
    withdrawn, kept = list(stage.consents)
    out = stage.srv.cli("consent", "withdraw", stage.consents[withdrawn], "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["DeletedFaces"] == 1, out.stderr
    page.reload()
    gone = page.locator(f'li.candidate[data-candidate="{withdrawn}"]')
    assert gone.locator("img.face").count() == 0 and "Face deleted since the search" in gone.inner_text()
    assert page.locator(f'li.candidate[data-candidate="{kept}"] img.face').count() == 1
    assert page.request.get(f"{stage.base}/review/{stage.member_search_id}/face/{withdrawn}.jpg").status == 404
    shot(page, "16-search-after-consent-withdrawal")


def test_ledger_page_shows_the_decisions_and_verifies(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "auditor")
    page.get_by_role("link", name="Audit").first.click()
    shot(page, "07-audit")
    page.get_by_label("Operation").fill("ReviewCandidate")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#ledger tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    mine = [t for t in texts if f"candidate={stage.candidates[0]}" in t or f"candidate={stage.candidates[1]}" in t]
    assert len(mine) == 3 and sum("decision=CONFIRM" in t for t in mine) == 2 and \
        sum("decision=REJECT" in t for t in mine) == 1
    # each decision is filed under its search's purpose and case, so an auditor's filter on them finds it
    assert all("investigative-lead" in t and "CASE-7" in t for t in mine)
    page.get_by_label("Purpose", exact=True).fill("investigative-lead")
    page.get_by_label("Case", exact=True).fill("CASE-7")
    page.get_by_role("button", name="Filter").click()
    assert sum(f"candidate={c}" in rows.nth(i).inner_text() for i in range(rows.count())
               for c in stage.candidates) == 3
    shot(page, "08-audit-filtered")
    rows.first.get_by_role("link").click()
    assert page.inner_text("#rec-operation") == "ReviewCandidate"
    shot(page, "09-audit-record")
    page.goto(stage.base + "/audit/verify")
    assert page.inner_text("#verify-result").startswith("Ledger OK")
    shot(page, "10-audit-verify")
    with page.expect_download() as dl:
        page.goto(stage.base + "/audit?operation=ReviewCandidate")
        page.get_by_role("link", name="Export these records").click()
    lines = Path(dl.value.path()).read_text().splitlines()
    assert lines and all(json.loads(line)["operation"] == "ReviewCandidate" for line in lines)
    page.goto(stage.base + "/report")
    assert "CONFIRM: 2" in page.inner_text("#decisions") and "REJECT: 1" in page.inner_text("#decisions")
    assert page.locator("svg.chart").count() >= 6
    shot(page, "11-report")


def test_searcher_cannot_open_the_review_pages(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "searcher")
    assert page.get_by_role("link", name="Review queue").count() == 0
    assert page.get_by_role("link", name="Audit").count() == 0
    for path in ("/review", f"/review/{stage.search_id}", "/audit", f"/audit/{stage.search_id}", "/report"):
        response = page.goto(stage.base + path)
        assert response.status == 403, path
        assert "role 'searcher'" in page.inner_text("#error-message")
    shot(page, "12-searcher-refused")


def test_forged_post_without_the_csrf_token_is_refused(browser: Any, stage: Stage) -> None:
    search_id, candidates = searched(stage.srv, stage.keys["searcher"])
    page = sign_in(browser, stage, "reviewer-one")
    before = len(ledger(stage, "ReviewCandidate"))
    forged = page.request.post(f"{stage.base}/review/{search_id}", form={
        "candidate": candidates[0], "decision": "CONFIRM", "reason": "forged"})
    assert forged.status == 403 and "CSRF" in forged.text()
    assert len(ledger(stage, "ReviewCandidate")) == before


def test_halt_shows_a_banner_until_a_second_admin_resumes(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "admin")
    page.get_by_label("Reason for halting").fill("Console test: audit finding 12")
    page.get_by_role("button", name="Halt matching").click()
    page.wait_for_selector("#halt-banner")
    assert "audit finding 12" in page.inner_text("#halt-banner")
    shot(page, "13-halted")
    page.get_by_label("Reason for resuming").fill("I halted it myself")
    page.get_by_role("button", name="Resume matching").click()
    assert "cannot resume" in page.inner_text("#error-message")
    other = sign_in(browser, stage, "reviewer-one")
    other.goto(stage.base + "/review")
    assert other.locator("#halt-banner").count() == 1  # on every page, for every role
    second = sign_in(browser, stage, "second-admin")
    second.get_by_label("Reason for resuming").fill("Finding 12 reviewed and closed")
    second.get_by_role("button", name="Resume matching").click()
    second.wait_for_url(stage.base + "/")
    assert second.locator("#halt-banner").count() == 0


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
    .filter(e => !(e.labels && e.labels.length)).map(e => e.name || e.id)"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_keyboard_only_sign_in_and_every_control_labelled(browser: Any, stage: Stage) -> None:
    page = browser.new_context().new_page()
    page.goto(stage.base + "/signin")
    key = stage.keys["auditor"]
    for _ in range(6):  # skip link, brand, then the first field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "access_key_id":
            break
    assert page.evaluate("document.activeElement.id") == "access_key_id"
    page.keyboard.type(key[0])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "secret_access_key"
    page.keyboard.type(key[1])
    page.keyboard.press("Enter")
    page.wait_for_url(stage.base + "/")
    for path in ("/", "/review", f"/review/{stage.search_id}", "/audit", "/report"):
        page.goto(stage.base + path)
        assert page.evaluate(UNLABELLED) == [], path
    reviewer = sign_in(browser, stage, "reviewer-one")
    reviewer.goto(f"{stage.base}/review/{stage.member_search_id}")
    assert reviewer.evaluate(UNLABELLED) == []


def test_pages_reflow_at_200_percent_zoom(browser: Any, stage: Stage) -> None:
    """1280 CSS pixels at 200% zoom leave a 640-pixel layout viewport: nothing may need sideways scrolling."""
    page = sign_in(browser, stage, "reviewer-one")
    page.set_viewport_size({"width": 640, "height": 900})
    for name, path in (("home", "/"), ("queue", "/review"), ("search", f"/review/{stage.member_search_id}"),
                       ("report", "/report")):
        page.goto(stage.base + path)
        assert page.evaluate(OVERFLOW) <= 0, path
        shot(page, f"17-zoom200-{name}")
    auditor = sign_in(browser, stage, "auditor")
    auditor.set_viewport_size({"width": 640, "height": 900})
    for path in ("/audit", f"/audit/{stage.search_id}", "/audit/verify"):
        auditor.goto(stage.base + path)
        assert auditor.evaluate(OVERFLOW) <= 0, path
    shot(auditor, "17-zoom200-verify")


def test_sign_out_ends_the_session(browser: Any, stage: Stage) -> None:
    page = sign_in(browser, stage, "reviewer-two")
    cookie = next(c for c in page.context.cookies() if c["name"] == "fl_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#signed-out")
    shot(page, "14-signed-out")
    page.context.add_cookies([cookie])  # the old session id, replayed
    page.goto(stage.base + "/review")
    assert "/console/signin" in page.url
