"""Reading the ledger for audit: filtered records, one record, export lines (verification: audit_trail).

Shared by ``faceledger audit`` (on a data directory) and the web console (on
the running service), so both report the same verdict in the same words.
Nothing here writes to the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameterError, ResourceNotFoundError
from ..store.ledger import canonical
from ..store.protocols import LedgerStore

PAGE = 100
SCAN_PAGE = 1000


@dataclass(frozen=True)
class LedgerFilter:
    """What an auditor narrows the ledger to. Times are epoch seconds, ``until`` exclusive."""

    principal: str | None = None
    operation: str | None = None
    purpose: str | None = None
    case: str | None = None
    collection_id: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidParameterError("The end of the time range must be after its start.")

    def matches(self, record: dict[str, Any]) -> bool:
        d = record["details"]
        return (self.purpose is None or d.get("purpose") == self.purpose) and \
            (self.case is None or d.get("case") == self.case)


def filtered(ledger: LedgerStore, flt: LedgerFilter, after_seq: int = 0) -> Iterator[dict[str, Any]]:
    """Every record after ``after_seq`` that passes ``flt``, in seq order (SQL filters first)."""
    if not 0 <= after_seq < 2**63:
        raise InvalidParameterError("A ledger position is a whole number from 0 to 2^63 - 1.")
    after = after_seq
    while True:
        page = ledger.records(after_seq=after, limit=SCAN_PAGE, operation=flt.operation,
                              principal=flt.principal, collection_id=flt.collection_id,
                              since=flt.since, until=flt.until)
        yield from (r for r in page if flt.matches(r))
        if len(page) < SCAN_PAGE:
            return
        after = page[-1]["seq"]


def page(ledger: LedgerStore, flt: LedgerFilter, after_seq: int = 0, limit: int = PAGE) -> list[dict[str, Any]]:
    out = []
    for rec in filtered(ledger, flt, after_seq):
        out.append(rec)
        if len(out) >= limit:
            break
    return out


def one(ledger: LedgerStore, seq: int) -> dict[str, Any]:
    if not 1 <= seq < 2**63:  # beyond SQLite's integers: no such record, not an overflow
        raise ResourceNotFoundError(f"The ledger has no record {seq}.")
    rows = ledger.records(after_seq=seq - 1, limit=1)
    if not rows or rows[0]["seq"] != seq:
        raise ResourceNotFoundError(f"The ledger has no record {seq}.")
    return rows[0]


def export_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines in the canonical form ``faceledger audit export`` writes."""
    for rec in records:
        yield canonical(rec) + "\n"
