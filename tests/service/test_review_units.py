"""Review decisions over a real service: what a ReviewCandidate record says about the search it decides on."""

from __future__ import annotations

from faceledger.service import Principal

from .conftest import both_stores, principal


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


@both_stores
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


def _recorded(service, operation: str, details: dict, collection: str = "c1") -> int:  # type: ignore[no-untyped-def]
    """A search's ledger record as every search writes it (Service.record), so the review index sees it."""
    from faceledger.service.context import RequestContext
    from faceledger.service.core import Call

    call = Call(operation, {}, principal("searcher"), RequestContext(purpose="general"))
    with service.catalog.transaction() as tx:
        return int(service.record(tx, call, collection, {"confirmations_required": 1, **details})["seq"])


@both_stores
def test_the_review_index_holds_searches_until_every_candidate_is_decided(service) -> None:  # type: ignore[no-untyped-def]
    from faceledger.service.queue import review_queue

    two = _recorded(service, "SearchFacesByImage", {"candidates": [{"FaceId": "a"}, {"FaceId": "b"}]})
    _recorded(service, "SearchFacesByImage", {"candidates": []})  # nothing to review
    _recorded(service, "SearchFacesByImage", {"refused": "purpose", "message": "no"})
    _recorded(service, "CompareFaces", {"matches": []})
    compare = _recorded(service, "CompareFaces", {"matches": [99.0]})
    assert service.catalog.pending_reviews() == [two, compare]
    reviewer = principal("reviewer")
    for candidate, left in (("a", [two, compare]), ("b", [compare])):
        service.dispatch("ReviewCandidate", {"SearchId": two, "Candidate": candidate, "Decision": "REJECT",
                                             "Reason": "no"}, reviewer, {})
        assert service.catalog.pending_reviews() == left
    assert [i["SearchId"] for i in review_queue(service, reviewer)] == [compare]
    assert service.catalog.pending_reviews(collection_id="other") == []


def test_the_review_index_is_filled_from_an_older_ledger(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Searches written before the index existed are found by the migration (refused ones, ones without
    candidates and other operations are not)."""
    import sqlite3

    from faceledger.store.catalog import Catalog
    from faceledger.store.ledger import Ledger

    data = tmp_path / "d"
    data.mkdir()
    with Catalog.open(data) as catalog, catalog.transaction() as tx:
        for op, details in (("SearchFacesByImage", {"candidates": [{"FaceId": "a"}]}),
                            ("SearchUsers", {"candidates": [{"UserId": "u"}]}),
                            ("SearchFaces", {"candidates": [], "face_id": "x"}),
                            ("SearchFacesByImage", {"refused": "halt", "candidates": [{"FaceId": "b"}]}),
                            ("FaceSearchCompleted", {"candidates": [{"Index": 0, "Matches": [{"FaceId": "c"}]}]}),
                            ("CompareFaces", {"matches": [98.0]}),
                            ("IndexFaces", {"candidates": [{"FaceId": "d"}]})):
            Ledger(catalog).append(tx, operation=op, principal="AKIASEARCHER00000000", collection_id="c1",
                                   details={"purpose": "general", **details})
    conn = sqlite3.connect(data / "catalog.db")  # as a version-4 catalog left it (v6, v7 undone: they re-run too)
    conn.executescript("DROP TABLE review_pending; ALTER TABLE collections DROP COLUMN dim; "
                       "ALTER TABLE collections DROP COLUMN metric; DROP TABLE staged_vectors; "
                       "DROP TABLE face_changes; DROP TABLE leases; DROP TABLE console_sessions; "
                       "DROP TRIGGER faces_change_insert; DROP TRIGGER faces_change_delete; "
                       "DROP TRIGGER collections_change_delete; DROP TRIGGER collections_change_repin; "
                       "DELETE FROM schema_version WHERE version >= 5;")
    conn.close()
    with Catalog.open(data) as catalog:
        assert catalog.pending_reviews() == [1, 2, 5, 6]


@both_stores
def test_the_queue_drops_index_entries_it_finds_decided(service) -> None:  # type: ignore[no-untyped-def]
    """An older search already decided when the index was filled costs one look, not one per view."""
    from faceledger.service.queue import review_queue

    seq = _recorded(service, "SearchFacesByImage", {"candidates": [{"FaceId": "a"}]})
    with service.catalog.transaction() as tx:  # decided without passing through ReviewCandidate's upkeep
        service.catalog.add_review(tx, seq, "a", "AKIAREVIEWER00000000", "REJECT", "no", 0.0)
    assert service.catalog.pending_reviews() == [seq]
    assert review_queue(service, principal("reviewer")) == []
    assert service.catalog.pending_reviews() == []
