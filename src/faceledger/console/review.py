"""The review queue, a search's page, and confirm/reject (the API's ReviewCandidate, via dispatch)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from ..errors import InvalidParameterError
from ..service.queue import review_queue, search_page
from ..service.thumbnails import for_review
from .web import Console, Ctx


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _seq(ctx: Ctx) -> int:
    return int(ctx.request.path_params["seq"])


async def queue(console: Console, ctx: Ctx) -> Response:
    q = ctx.request.query_params
    filters = {"purpose": _text(q.get("purpose")), "case": _text(q.get("case")),
               "collection_id": _text(q.get("collection"))}
    items = await console.call(review_queue, console.svc, ctx.principal, **filters)
    return console.render(ctx.request, "queue.html", ctx, items=items, filters=filters)


async def search(console: Console, ctx: Ctx) -> Response:
    seq = _seq(ctx)
    review = await console.dispatch(ctx, "GetReview", {"SearchId": seq})
    view = await console.call(search_page, console.svc, ctx.principal, review)
    return console.render(ctx.request, "search.html", ctx, s=view, done=ctx.request.query_params.get("done"))


async def decide(console: Console, ctx: Ctx) -> Response:
    seq, form = _seq(ctx), ctx.form
    assert form is not None
    decision = form.get("decision")
    if decision not in ("CONFIRM", "REJECT"):
        raise InvalidParameterError("Choose Confirm or Reject.")
    await console.dispatch(ctx, "ReviewCandidate", {
        "SearchId": seq, "Candidate": form.get("candidate"), "Decision": decision,
        "Reason": form.get("reason") if isinstance(form.get("reason"), str) else None})
    done = urlencode({"done": f"{decision.lower()}ed {form.get('candidate')}"})
    return console.redirect(f"/console/review/{seq}?{done}")


async def image(console: Console, ctx: Ctx) -> Response:
    """A probe or candidate thumbnail: decrypted only for a key that may review this search, never cached."""
    face_id = ctx.request.path_params.get("face_id")
    jpeg = await console.call(for_review, console.svc, ctx.principal, _seq(ctx), face_id)
    return console.secure(Response(jpeg, media_type="image/jpeg"))
