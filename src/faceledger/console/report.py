"""Reports: the transparency report with charts, calibration plots, the model card, collections
and retention; and halt / resume for admins (the API's Halt and Resume, via dispatch)."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from ..service import report as rep
from ..service.context import may
from .charts import bar_chart, line_chart
from .web import Console, Ctx, epoch

DAY = 86400.0


def _report(console: Console, since: float, until: float) -> dict[str, Any]:
    rows = [r for r in console.svc.ledger.iter_all() if since <= r["at"] <= until]
    return {"t": rep.transparency(rows, since, until), "days": rep.searches_over_time(rows),
            "curves": rep.calibration_curves(console.svc.calibration)}


def _charts(data: dict[str, Any]) -> dict[str, Any]:
    t, days, curves = data["t"], data["days"], data["curves"]
    purposes = sorted({p for c in days.values() for p in c})
    over_time = line_chart(
        "Searches by purpose per day (UTC)",
        [(p, [(i, float(days[d].get(p, 0))) for i, d in enumerate(days)]) for p in purposes],
        x_label=f"day ({next(iter(days), '-')} to {next(reversed(days), '-')})", y_label="searches") \
        if len(days) > 1 else bar_chart("Searches by purpose", [(p, float(sum(c.get(p, 0) for c in days.values())))
                                                                for p in purposes])
    deletions = [(k, float(v)) for k, v in sorted(t["faces_deleted"].items())]
    return {
        "over_time": over_time,
        "decisions": bar_chart("Candidates confirmed and rejected",
                               [(k.lower(), float(v)) for k, v in sorted(t["review_decisions"].items())]),
        "refusals": bar_chart("Refusals by reason", [(k, float(v)) for k, v in sorted(t["refusals"].items())]),
        "deletions": bar_chart("Faces deleted, by how", deletions),
        "similarity": line_chart("Similarity against false match rate", [
            ("measured", curves["measured"]), ("extrapolated (tail fit)", curves["extrapolated"])],
            x_label="Similarity", y_label="FMR (log)", y_log=True),
        "det": line_chart("DET curve (lfw_dev calibration)", [("FNMR vs FMR", curves["det"])],
                          x_label="false match rate (log)", y_label="false non-match rate (log)",
                          x_log=True, y_log=True),
    }


async def report(console: Console, ctx: Ctx) -> Response:
    q = ctx.request.query_params
    now = time.time()
    since = epoch(q.get("from")) or now - 365 * DAY
    until = epoch(q.get("to")) or now
    data = await console.call(_report, console, since, until)
    schedule = consents = None
    if may(ctx.principal, "RetentionSchedule"):
        schedule = await console.dispatch(ctx, "RetentionSchedule", {})
    if may(ctx.principal, "ListConsents"):
        consents = await console.dispatch(ctx, "ListConsents", {})
    status = await console.dispatch(ctx, "GetStatus", {})
    return console.render(ctx.request, "report.html", ctx, t=data["t"], days=data["days"],
                          curves=data["curves"], charts=_charts(data), schedule=schedule,
                          consents=consents, state=status, period={"from": q.get("from", ""),
                                                                    "to": q.get("to", "")})


async def halt(console: Console, ctx: Ctx) -> Response:
    assert ctx.form is not None
    await console.dispatch(ctx, "Halt", {"Reason": ctx.form.get("reason")})
    return console.redirect("/console/")


async def resume(console: Console, ctx: Ctx) -> Response:
    assert ctx.form is not None
    await console.dispatch(ctx, "Resume", {"Reason": ctx.form.get("reason")})
    return console.redirect("/console/")
