"""Human review of candidate lists: confirm or reject each candidate, with a reason.

A search's candidates are leads. A reviewer key records a decision on one
candidate of one search (named by the search's ledger sequence number,
returned as ``Faceledger.SearchId``). Where the search's purpose requires
two-person confirmation, a candidate counts as confirmed only once two
different reviewers confirmed it; any rejection makes it rejected. The key
that ran the search cannot review it. Every decision is a ledger record.
"""

from __future__ import annotations

from ..errors import AccessDeniedError, InvalidParameterError, ResourceNotFoundError
from .candidates import SEARCH_OPERATIONS, candidates_of
from .core import Call, Service

__all__ = ["SEARCH_OPERATIONS", "get_review", "review_candidate", "status"]
DECISIONS = ("CONFIRM", "REJECT")


def _search_record(svc: Service, seq: object, call: Call | None = None) -> dict:
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2**63:
        raise InvalidParameterError("SearchId must be the positive integer a search returned in Faceledger.SearchId.")
    rows = svc.ledger.records(after_seq=seq - 1, limit=1)
    if not rows or rows[0]["seq"] != seq or rows[0]["operation"] not in SEARCH_OPERATIONS \
            or "refused" in rows[0]["details"]:
        raise ResourceNotFoundError(f"No search with SearchId {seq}.")
    if call is not None:
        bound = call.principal.defaults  # a reviewer key bound to a purpose or case sees only those
        for what in ("purpose", "case"):
            if bound.get(what) and rows[0]["details"].get(what) != bound[what]:
                raise AccessDeniedError(f"This key reviews {what} {bound[what]!r} only.")
    return rows[0]


_candidates = candidates_of


def status(svc: Service, record: dict) -> dict:
    need = int(record["details"].get("confirmations_required", 1))
    decisions = svc.catalog.reviews_for(record["seq"])
    out = []
    for cand in _candidates(record):
        mine = [d for d in decisions if d["candidate"] == cand]
        confirms = {d["reviewer"] for d in mine if d["decision"] == "CONFIRM"}
        rejects = {d["reviewer"] for d in mine if d["decision"] == "REJECT"}
        state = "REJECTED" if rejects else "CONFIRMED" if len(confirms) >= need else "PENDING"
        out.append({"Candidate": cand, "Status": state, "Confirmations": len(confirms),
                    "Rejections": len(rejects), "Decisions": [
                        {"Reviewer": d["reviewer"], "Decision": d["decision"], "Reason": d["reason"], "At": d["at"]}
                        for d in mine]})
    return {"SearchId": record["seq"], "Operation": record["operation"], "Purpose": record["details"].get("purpose"),
            "Case": record["details"].get("case"), "ConfirmationsRequired": need, "Candidates": out}


def review_candidate(svc: Service, call: Call) -> dict:
    p = call.params
    record = _search_record(svc, p.get("SearchId"), call)
    candidate = p.get("Candidate")
    if candidate not in _candidates(record):
        raise InvalidParameterError(f"{candidate!r} is not a candidate of search {record['seq']}.")
    decision = p.get("Decision")
    if decision not in DECISIONS:
        raise InvalidParameterError("Decision must be CONFIRM or REJECT.")
    reason = p.get("Reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidParameterError("Reason is required: say why the candidate is confirmed or rejected.")
    if record["principal"] == call.principal.access_key_id:
        raise AccessDeniedError("The key that ran a search cannot review its candidates.")
    with svc.catalog.transaction() as tx:
        svc.catalog.add_review(tx, record["seq"], candidate, call.principal.access_key_id, decision,
                               reason.strip(), call.at)
        svc.record(tx, call, record["collection_id"], {
            # a decision belongs to the search's purpose and case, not to whatever the reviewer's key or
            # request headers say: audit filters and the transparency report count it there
            "purpose": record["details"].get("purpose"), "case": record["details"].get("case"),
            "search_seq": record["seq"], "candidate": candidate, "decision": decision, "reason": reason.strip(),
            "search_input_sha256": record["details"].get("image_sha256") or record["details"].get("source_sha256")})
    st = status(svc, record)  # after the commit, so two reviewers deciding at once both count
    if not any(c["Status"] == "PENDING" for c in st["Candidates"]):
        with svc.catalog.transaction() as tx:  # nothing left to decide: out of the review queue's index
            svc.catalog.drop_pending_reviews(tx, [record["seq"]])
    return st


def get_review(svc: Service, call: Call) -> dict:
    return status(svc, _search_record(svc, call.params.get("SearchId"), call))
