"""The transparency report, generated from the ledger alone.

Counts for a period: searches by purpose, candidates returned, review
confirmations and rejections, thresholds raised to the floor, refusals by
kind (quality, purpose, case, halt), deletions and their receipts, halts,
policy changes, the model version and calibration in use, and the gallery
sizes searched. Everything it says can be re-derived from an exported ledger.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from .review import SEARCH_OPERATIONS

ONE_TO_MANY = SEARCH_OPERATIONS - {"CompareFaces"}


def transparency(records: list[dict[str, Any]], since: float, until: float) -> dict[str, Any]:
    searches: Counter[str] = Counter()
    candidates: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    investigative: Counter[str] = Counter()  # searches under a lowered, investigative floor
    refusals: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    deletions: Counter[str] = Counter()
    receipts: list[dict] = []
    galleries: dict[str, list[int]] = defaultdict(list)
    models, calibrations, policies = set(), set(), []
    normalizations: set[str] = set()
    scoring: Counter[str] = Counter()  # per search: normalised, inactive (cohort too small) or off
    halts = []
    enrolled = 0
    for r in records:
        d, op = r["details"], r["operation"]
        purpose = d.get("purpose", "general")
        if d.get("model_version"):
            models.add(d["model_version"])
        if d.get("calibration"):
            calibrations.add(d["calibration"])
        if d.get("score_normalization"):
            normalizations.add(d["score_normalization"])
        if "refused" in d:
            refusals[d["refused"]] += 1
            continue
        if op in SEARCH_OPERATIONS:
            searches[f"{purpose}/{op}"] += 1
            n = len(d.get("candidates", d.get("matches", [])))
            candidates[purpose] += n
            if d.get("threshold_raised"):
                raised[purpose] += 1
            if d.get("investigative"):
                investigative[purpose] += 1
            if d.get("scoring"):
                scoring["inactive" if d["scoring"] == "inactive" else "off" if d["scoring"] == "off"
                        else "normalised"] += 1
            if r["collection_id"] and d.get("gallery_size") is not None:
                galleries[r["collection_id"]].append(int(d["gallery_size"]))
        elif op == "ReviewCandidate":
            decisions[d.get("decision", "?")] += 1
        elif op == "DeletionReceipt":
            deletions[d.get("reason", "?")] += len(d.get("face_ids", []))
            receipts.append({"seq": r["seq"], "collection": r["collection_id"], "reason": d.get("reason"),
                             "faces": len(d.get("face_ids", []))})
        elif op == "DeleteFaces":
            deletions["DeleteFaces"] += len(d.get("face_ids", []))
        elif op == "DeleteCollection":
            deletions["DeleteCollection"] += int(d.get("faces_deleted", 0))
        elif op == "IndexFaces":
            enrolled += len(d.get("face_ids", []))
        elif op in ("Halt", "Resume"):
            halts.append({"seq": r["seq"], "operation": op, "by": r["principal"], "reason": d.get("reason"),
                          "at": r["at"]})
        elif op == "PolicyLoaded":
            policies.append({"seq": r["seq"], "version": d.get("version"), "sha256": d.get("sha256")})
    return {
        "period": {"from": _iso(since), "to": _iso(until)},
        "records": len(records),
        "searches": dict(sorted(searches.items())),
        "searches_total": sum(searches.values()),
        "candidates_returned": dict(candidates),
        "thresholds_raised_to_floor": dict(raised),
        "investigative_searches": dict(investigative),
        "refusals": dict(refusals),
        "review_decisions": dict(decisions),
        "faces_enrolled": enrolled,
        "faces_deleted": dict(deletions),
        "deletion_receipts": receipts,
        "halts": halts,
        "policy_changes": policies,
        "gallery_sizes": {c: {"min": min(v), "max": max(v), "searches": len(v)} for c, v in sorted(galleries.items())},
        "model_versions": sorted(models),
        "calibrations": sorted(calibrations),
        "score_normalizations": sorted(normalizations),
        "searches_by_scoring": dict(scoring),
    }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def counts_text(counts: dict[str, Any]) -> str:
    """``{'general': 27, 'lead': 3}`` as ``general 27, lead 3`` (``none`` when empty)."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def markdown(report: dict[str, Any]) -> str:
    p = report["period"]
    lines = [f"# Transparency report, {p['from']} to {p['to']}", "",
             f"Generated from {report['records']} ledger records. Model versions: "
             f"{', '.join(report['model_versions']) or '-'}; calibration: {', '.join(report['calibrations']) or '-'}; "
             f"score normalisation: {', '.join(report['score_normalizations']) or '-'} "
             f"(searches: {counts_text(report['searches_by_scoring'])}; see docs/fairness.md).",
             "", "## Searches", "", "| purpose/operation | searches |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["searches"].items()] or ["| - | 0 |"]
    lines += ["", f"Candidates returned by purpose: {counts_text(report['candidates_returned'])}.",
              f"Requested thresholds raised to the policy floor: {counts_text(report['thresholds_raised_to_floor'])}.",
              f"Investigative searches (lowered floor, for review only): "
              f"{counts_text(report.get('investigative_searches', {}))}.",
              f"Refusals (quality, purpose, case, halt): {counts_text(report['refusals'])}.",
              f"Review decisions: {counts_text(report['review_decisions'])}.", "",
              "## Enrolment and deletion", "",
              f"Faces enrolled: {report['faces_enrolled']}. Faces deleted: {counts_text(report['faces_deleted'])}.",
              f"Deletion receipts: {len(report['deletion_receipts'])}.", "", "## Gallery sizes searched", ""]
    lines += [f"- {c}: {g['min']}-{g['max']} faces over {g['searches']} searches"
              for c, g in report["gallery_sizes"].items()] or ["- none"]
    lines += ["", "## Halts and policy changes", ""]
    lines += [f"- #{h['seq']} {h['operation']} by {h['by']}: {h['reason']}" for h in report["halts"]] or ["- no halts"]
    lines += [f"- #{c['seq']} policy {c['version']} ({c['sha256'][:12]}…)" for c in report["policy_changes"]]
    return "\n".join(lines) + "\n"


def searches_over_time(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Searches (not refused) per UTC day, by purpose: {day: {purpose: n}}, days in order."""
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        if r["operation"] in SEARCH_OPERATIONS and "refused" not in r["details"]:
            day = dt.datetime.fromtimestamp(r["at"], dt.UTC).strftime("%Y-%m-%d")
            days[day][r["details"].get("purpose", "general")] += 1
    return {day: dict(c) for day, c in sorted(days.items())}


def calibration_curves(table: Any) -> dict[str, Any]:
    """From a CalibrationTable: (Similarity, FMR) over the measured and extrapolated rows, and the DET curve.

    The DET curve pairs FMR with FNMR at each measured distance (rows with
    either at 0 or 1 carry no information on log axes and are left out).
    """
    import numpy as np

    from ..engine.calibration import FMR_FLOOR, similarity_from_fmr

    fmr = 10.0 ** np.asarray(table.log10_fmr, dtype=np.float64)
    sim = similarity_from_fmr(fmr)
    cut = int(table.measured_upto_index)
    # below FMR_FLOOR every distance is Similarity 100: nothing to plot
    measured = [(float(s), float(f)) for s, f in zip(sim[cut:], fmr[cut:], strict=True) if f >= FMR_FLOOR]
    extrapolated = [(float(s), float(f)) for s, f in zip(sim[:cut + 1], fmr[:cut + 1], strict=True)
                    if f >= FMR_FLOOR]
    det = [(float(f), float(n)) for f, n in zip(fmr[cut:], np.asarray(table.fnmr)[cut:], strict=True)
           if 0 < f < 1 and 0 < n < 1]
    return {"measured": measured, "extrapolated": extrapolated, "det": det, "version": table.version,
            "meta": {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float))}}
