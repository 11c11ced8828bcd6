"""Review decisions over a real service: what a ReviewCandidate record says about the search it decides on."""

from __future__ import annotations

from faceledger.service import Principal

from .conftest import principal


def _search(service, purpose: str, case: str | None) -> int:  # type: ignore[no-untyped-def]
    details = {"purpose": purpose, "confirmations_required": 1, "candidates": [{"FaceId": "f1", "Similarity": 99.0}]}
    if case:
        details["case"] = case
    with service.catalog.transaction() as tx:
        rec = service.ledger.append(tx, operation="SearchFacesByImage", principal="AKIASEARCHER00000000",
                                    collection_id="c1", details=details)
    return int(rec["seq"])


def _decide(service, who: Principal, seq: int, headers: dict[str, str]) -> dict:  # type: ignore[no-untyped-def]
    service.dispatch("ReviewCandidate", {"SearchId": seq, "Candidate": "f1", "Decision": "REJECT", "Reason": "no"},
                     who, {"faceledger_headers": headers, "signed_headers": list(headers)})
    return service.ledger.records(operation="ReviewCandidate", limit=100)[-1]["details"]


def test_a_decision_is_recorded_under_the_searchs_purpose_and_case(service) -> None:  # type: ignore[no-untyped-def]
    """Not the reviewer's: an unbound reviewer's decision on a fraud search is a fraud decision, and a
    purpose or case header sent with ReviewCandidate cannot relabel it."""
    seq = _search(service, "fraud", "C-1")
    rec = _decide(service, principal("reviewer"), seq, {})
    assert (rec["purpose"], rec["case"]) == ("fraud", "C-1")
    other = Principal("AKIAREVIEWERTWO00000", "x", "reviewer")
    rec = _decide(service, other, seq, {"x-faceledger-purpose": "general", "x-faceledger-case": "C-99"})
    assert (rec["purpose"], rec["case"]) == ("fraud", "C-1")


def test_a_decision_on_a_search_without_a_case_carries_none(service) -> None:  # type: ignore[no-untyped-def]
    seq = _search(service, "general", None)
    rec = _decide(service, principal("reviewer"), seq, {"x-faceledger-case": "C-99"})
    assert rec["purpose"] == "general" and "case" not in rec


def _record(service, operation: str, details: dict) -> int:  # type: ignore[no-untyped-def]
    with service.catalog.transaction() as tx:
        rec = service.ledger.append(tx, operation=operation, principal="AKIASEARCHER00000000", collection_id="c1",
                                    details={"purpose": "general", "confirmations_required": 1, **details})
    return int(rec["seq"])


def test_a_search_page_says_deleted_only_of_faces_and_scores_every_kind_of_candidate(service) -> None:  # type: ignore[no-untyped-def]
    """User candidates, a CompareFaces target and a video person's matches are not 'deleted faces'; and the
    page still opens when the collection itself is gone (here it never existed: DeleteCollection)."""
    from faceledger.service.queue import search_page

    reviewer = principal("reviewer")
    users = _record(service, "SearchUsersByImage", {"candidates": [{"UserId": "user-1", "Similarity": 97.5}]})
    compare = _record(service, "CompareFaces", {"matches": [91.0]})
    video = _record(service, "FaceSearchCompleted", {"candidates": [
        {"Index": 0, "Matches": [{"FaceId": "gone-face", "Similarity": 88.0}]}]})
    pages = {}
    for seq in (users, compare, video):
        review = service.dispatch("GetReview", {"SearchId": seq}, reviewer, {})
        pages[seq] = {c["Candidate"]: c for c in search_page(service, reviewer, review)["Candidates"]}
    assert pages[users]["user-1"]["FaceDeleted"] is False and pages[users]["user-1"]["Similarity"] == 97.5
    assert pages[compare]["target"]["FaceDeleted"] is False and pages[compare]["target"]["Similarity"] == 91.0
    # a video match names an enrolled face: this one is not in the collection any more
    assert pages[video]["gone-face"]["FaceDeleted"] is True and pages[video]["gone-face"]["Similarity"] == 88.0
