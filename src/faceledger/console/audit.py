"""The audit pages: browse and filter the ledger, open one record, verify, export what is filtered."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response, StreamingResponse

from ..service import audit
from ..service.audit_trail import open_verify, trusted_keys
from ..store.ledger import canonical
from .web import Console, Ctx, epoch

FILTERS = ("actor", "operation", "purpose", "case", "collection", "since", "until")


def _filter(ctx: Ctx) -> tuple[audit.LedgerFilter, dict[str, str]]:
    q = ctx.request.query_params
    raw = {k: (q.get(k) or "").strip() for k in FILTERS}
    flt = audit.LedgerFilter(principal=raw["actor"] or None, operation=raw["operation"] or None,
                             purpose=raw["purpose"] or None, case=raw["case"] or None,
                             collection_id=raw["collection"] or None, since=epoch(raw["since"]),
                             until=epoch(raw["until"]))
    return flt, raw


async def browse(console: Console, ctx: Ctx) -> Response:
    flt, raw = _filter(ctx)
    after = ctx.request.query_params.get("after", "0")
    after_seq = int(after) if after.isdigit() else 0
    rows = await console.call(audit.page, console.svc.ledger, flt, after_seq)
    query = urlencode({k: v for k, v in raw.items() if v})
    return console.render(ctx.request, "audit.html", ctx, rows=rows, filters=raw, query=query,
                          more=len(rows) >= audit.PAGE, last=rows[-1]["seq"] if rows else after_seq)


async def record(console: Console, ctx: Ctx) -> Response:
    rec = await console.call(audit.one, console.svc.ledger, int(ctx.request.path_params["seq"]))
    pretty = canonical(rec["details"])
    return console.render(ctx.request, "record.html", ctx, r=rec, details=pretty)


def _verify(console: Console) -> dict[str, Any]:
    """The same verdict as `faceledger audit verify` with the configured key: chain, signatures, interval."""
    settings = console.svc.settings
    keys = trusted_keys([], settings)
    return open_verify(settings, keys, settings.checkpoint_every, []).to_json()


async def verify(console: Console, ctx: Ctx) -> Response:
    result = await console.call(_verify, console)
    return console.render(ctx.request, "verify.html", ctx, v=result)


async def export(console: Console, ctx: Ctx) -> Response:
    flt, _ = _filter(ctx)
    rows = await console.call(lambda: list(audit.filtered(console.svc.ledger, flt)))
    response = StreamingResponse(audit.export_lines(rows), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": 'attachment; filename="ledger-export.jsonl"'})
    return console.secure(response)
