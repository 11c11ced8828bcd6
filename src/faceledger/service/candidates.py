"""Which ledger records are searches, and which candidates a search's record names.

Shared by review (decisions), the review queue's index (written with every
search record) and the transparency report. Pure functions of a record; no
imports from the rest of the service, so the core can use them.
"""

from __future__ import annotations

from typing import Any

SEARCH_OPERATIONS = frozenset({"SearchFaces", "SearchFacesByImage", "SearchUsers", "SearchUsersByImage",
                               "CompareFaces", "FaceSearchCompleted"})


def candidates_of(record: dict[str, Any]) -> list[str]:
    """The candidate ids a reviewer decides on: face or user ids, a video person's matched faces,
    and ``target`` for a CompareFaces that matched."""
    out = []
    for c in record["details"].get("candidates", []):
        out.append(c.get("FaceId") or c.get("UserId"))
        out.extend(m.get("FaceId") for m in c.get("Matches", []))  # a video person's matches
    if record["operation"] == "CompareFaces" and record["details"].get("matches"):
        out.append("target")
    return [c for c in out if c]


def awaits_review(record: dict[str, Any]) -> bool:
    """A search that ran (not refused) and named at least one candidate."""
    return record["operation"] in SEARCH_OPERATIONS and "refused" not in record["details"] \
        and bool(candidates_of(record))
