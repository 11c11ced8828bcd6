"""Operator commands for accountability: halt, resume, status, consent, review, retention, report, policy."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click

from ..service.policy import load_policy
from ..service.report import markdown, transparency
from ..store.ledger import Ledger
from ..store.opening import open_catalog
from .client import client_options, own_call
from .output import emit, handle_errors
from .serve import data_option, settings_for

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.command()
@click.option("--reason", required=True, help="Why matching must stop (recorded in the ledger).")
@client_options
@json_option
@handle_errors
def halt(reason: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Stop all matching now (searches and compares answer an error naming the halt)."""
    out = own_call(endpoint, profile_file, "Halt", {"Reason": reason})
    emit(out, as_json, lambda o: f"matching HALTED by {o['HaltedBy']}: {o['Reason']}")


@click.command()
@click.option("--reason", required=True, help="Why matching may resume.")
@client_options
@json_option
@handle_errors
def resume(reason: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Resume matching; needs an admin key other than the one that halted."""
    out = own_call(endpoint, profile_file, "Resume", {"Reason": reason})
    emit(out, as_json, lambda o: "matching resumed")


@click.command()
@client_options
@json_option
@handle_errors
def status(endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Halt state, model, calibration, policy and ledger head of a running service."""
    out = own_call(endpoint, profile_file, "GetStatus", {})
    emit(out, as_json, lambda o: (
        f"{'HALTED' if o['Halted'] else 'matching on'}; model {o['ModelVersion']}; calibration "
        f"{o['CalibrationVersion']}; policy {o['Policy']['version']} ({', '.join(o['Policy']['purposes'])}); "
        f"ledger head #{(o['LedgerHead'] or {}).get('Seq', 0)}"
        + (f"\npack {o['ModelPack']['Name']} {o['ModelPack']['Version']}"
           f"{'' if o['ModelPack']['Calibrated'] else ' (NOT CALIBRATED: matching refused)'}; weights: "
           f"{o['ModelPack']['Licences']['Weights']}; training data: {o['ModelPack']['Licences']['TrainingData']}"
           if o.get("ModelPack") else "")))


@click.group()
def consent() -> None:
    """Consent records for enrolment into consent-requiring collections."""


@consent.command("create")
@click.option("--subject", required=True, help="Who consents (a reference, not a biometric).")
@click.option("--notice-file", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The notice text the subject was shown.")
@click.option("--notice-version", required=True)
@click.option("--purpose", required=True)
@click.option("--term-days", type=int, default=None, help="Consent lapses after this many days.")
@client_options
@json_option
@handle_errors
def consent_create(subject: str, notice_file: str, notice_version: str, purpose: str, term_days: int | None,
                   endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    out = own_call(endpoint, profile_file, "CreateConsent", {
        "Subject": subject, "NoticeText": Path(notice_file).read_text(), "NoticeVersion": notice_version,
        "Purpose": purpose, "TermDays": term_days})
    emit(out, as_json, lambda o: f"consent {o['Consent']['ConsentId']} recorded")


@consent.command("withdraw")
@click.argument("consent_id")
@client_options
@json_option
@handle_errors
def consent_withdraw(consent_id: str, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Withdraw a consent: every face enrolled under it is deleted, with a receipt."""
    out = own_call(endpoint, profile_file, "WithdrawConsent", {"ConsentId": consent_id})
    emit(out, as_json, lambda o: f"consent {consent_id} withdrawn; {o['DeletedFaces']} face(s) deleted")


@consent.command("list")
@click.option("--subject", default=None)
@client_options
@json_option
@handle_errors
def consent_list(subject: str | None, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    out = own_call(endpoint, profile_file, "ListConsents", {"Subject": subject})
    emit(out, as_json, lambda o: "\n".join(
        f"{c['ConsentId']}  {c['Subject']:<20} {c['Purpose']:<16} "
        f"{'WITHDRAWN' if c.get('WithdrawnAt') else 'live'}" for c in o["Consents"]) or "no consents")


@click.group()
def review() -> None:
    """Human review of candidate lists (reviewer keys)."""


def _decide(decision: str):  # type: ignore[no-untyped-def]
    @click.argument("search_id", type=int)
    @click.argument("candidate")
    @click.option("--reason", required=True)
    @client_options
    @json_option
    @handle_errors
    def command(search_id: int, candidate: str, reason: str, endpoint: str | None, profile_file: str | None,
                as_json: bool) -> None:
        out = own_call(endpoint, profile_file, "ReviewCandidate", {
            "SearchId": search_id, "Candidate": candidate, "Decision": decision, "Reason": reason})
        emit(out, as_json, _review_text)
    return command


def _review_text(o: dict) -> str:
    lines = [f"search #{o['SearchId']} ({o['Operation']}, purpose {o['Purpose']}, case {o.get('Case') or '-'}); "
             f"{o['ConfirmationsRequired']} confirmation(s) required"]
    lines += [f"  {c['Candidate']}  {c['Status']}  ({c['Confirmations']} confirm, {c['Rejections']} reject)"
              for c in o["Candidates"]]
    return "\n".join(lines)


review.command("confirm", help="Confirm a candidate of a search.")(_decide("CONFIRM"))
review.command("reject", help="Reject a candidate of a search.")(_decide("REJECT"))


@review.command("show")
@click.argument("search_id", type=int)
@client_options
@json_option
@handle_errors
def review_show(search_id: int, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Each candidate of a search with its review status."""
    emit(own_call(endpoint, profile_file, "GetReview", {"SearchId": search_id}), as_json, _review_text)


@click.group()
def retention() -> None:
    """Retention: the public schedule and the sweep that enforces it."""


@retention.command("sweep")
@client_options
@json_option
@handle_errors
def retention_sweep(endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Delete expired enrolments and those of lapsed consents now (receipts in the ledger)."""
    out = own_call(endpoint, profile_file, "RetentionSweep", {})
    emit(out, as_json, lambda o: f"deleted {o['RetentionDeleted']} expired and {o['ConsentDeleted']} "
                                 "lapsed-consent enrolment(s)")


@retention.command("schedule")
@client_options
@json_option
@handle_errors
def retention_schedule(endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """The public retention schedule for every collection."""
    out = own_call(endpoint, profile_file, "RetentionSchedule", {})
    emit(out, as_json, lambda o: "\n".join(
        [f"{c['CollectionId']:<24} {c['FaceCount']:>7} faces  consent {'required' if c['ConsentRequired'] else 'no':<8} "
         f"{c['Rule']}" for c in o["Collections"]]
        + [f"ledger records are kept at least {o['LedgerRetentionDays']} days and never deleted by faceledger"]))


@click.group()
def report() -> None:
    """Reports generated from the ledger."""


def _epoch(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date (YYYY-MM-DD)") from exc


@report.command("transparency")
@click.option("--from", "since", default=None, help="ISO date (UTC); default: 365 days ago.")
@click.option("--to", "until", default=None, help="ISO date (UTC); default: now.")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@data_option
@json_option
@handle_errors
def report_transparency(since: str | None, until: str | None, fmt: str, data_dir: str | None, as_json: bool) -> None:
    """Searches by purpose, candidates, reviews, floors, refusals, deletions, model and calibration."""
    fmt = "json" if as_json else fmt
    now = time.time()
    t0, t1 = _epoch(since, now - 365 * 86400), _epoch(until, now)
    with open_catalog(settings_for(data_dir)) as catalog:
        rows = [r for r in Ledger(catalog).iter_all() if t0 <= r["at"] <= t1]
    rep = transparency(rows, t0, t1)
    click.echo(json.dumps(rep) if fmt == "json" else markdown(rep), nl=fmt == "json")


@click.group()
def policy() -> None:
    """The policy file: purposes and their rules."""


@policy.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False, exists=True))
@json_option
@handle_errors
def policy_check(policy_file: str, as_json: bool) -> None:
    """Validate a policy file (TOML or JSON) and print what it allows."""
    pol = load_policy(Path(policy_file))
    emit(pol.summary(), as_json, lambda o: f"policy {o['version']} OK: purposes {', '.join(o['purposes'])}")
