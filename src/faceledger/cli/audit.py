"""``faceledger audit``: verify, show and export the ledger (reads the data directory)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ..errors import InvalidParameterError
from ..service.audit_trail import (
    anchor_head,
    load_heads,
    open_verify,
    rotate_key,
    trusted_keys,
    verify_export,
)
from ..service.checkpoints import public_pem
from ..service.signing_key import load_signing_key
from ..store.ledger import Ledger
from ..store.opening import open_catalog
from .client import client_options, own_call
from .output import emit, handle_errors
from .serve import data_option, settings_for


@click.group()
def audit() -> None:
    """The tamper-evident ledger: every operation on biometric data, who, when, why, what came back."""


def _verdict_text(o: dict) -> str:
    if o["ok"]:
        signed = f"last signed #{o['last_signed_seq']}" if o["last_signed_seq"] else "none signed yet"
        return (f"ledger OK: {o['checked']} record(s), {o['checkpoints']} signed checkpoint(s) ({signed}), "
                f"{o['heads_checked']} published head(s), head {o['head_hash'][:16]}…")
    last = o["last_intact"]
    intact = f"last intact record #{last['seq']} ({str(last['hash'])[:16]}…)" if last else "no intact record"
    if o["first_bad_seq"] is None:  # the ledger reads intact, the file around it does not
        return f"catalog DAMAGED: {o['reason']}\n{intact}"
    return f"ledger BROKEN at record {o['first_bad_seq']}: {o['reason']}\n{intact}"


@audit.command("verify")
@data_option
@click.option("--file", "export_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Verify an exported ledger file instead of the data directory.")
@click.option("--public-key", "public_keys", type=click.Path(dir_okay=False, exists=True), multiple=True,
              help="PEM file of trusted public key(s): the published key history (repeatable; default: the "
                   "public half of FACELEDGER_LEDGER_KEY_FILE when it exists).")
@click.option("--expect-head", "expect_heads", multiple=True, metavar="SEQ:HASH",
              help="A head published earlier that must still be in the chain (repeatable).")
@click.option("--heads", "heads_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="File of published heads: `audit anchor` lines or SEQ:HASH lines.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
              help="Records allowed between checkpoints (default: FACELEDGER_CHECKPOINT_EVERY, 1000).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_verify(data_dir: str | None, export_file: str | None, public_keys: tuple[str, ...],
                 expect_heads: tuple[str, ...], heads_file: str | None, checkpoint_every: int | None,
                 as_json: bool) -> None:
    """Check chain, checkpoint signatures and interval, published heads; name the first bad record. Exit 13."""
    settings = settings_for(data_dir)
    every = settings.checkpoint_every if checkpoint_every is None else checkpoint_every
    heads = load_heads(expect_heads, heads_file)
    keys = trusted_keys([Path(p) for p in public_keys], settings)
    verdict = verify_export(Path(export_file), keys, every, heads) if export_file else \
        open_verify(settings, keys, every, heads)
    out = verdict.to_json()
    emit(out, as_json, _verdict_text)
    if not verdict.ok:
        sys.exit(13)


@audit.command("anchor")
@data_option
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Append the signed head to this file (JSON lines) as well as printing it.")
@click.option("--json", "as_json", is_flag=True, help="Print the signed head as one JSON object (it is one already).")
@handle_errors
def audit_anchor(data_dir: str | None, out_file: str | None, as_json: bool) -> None:
    """Verify the ledger, then print its head signed with the service key, for an auditor to keep."""
    settings = settings_for(data_dir)
    line = anchor_head(settings)
    if out_file:
        with open(out_file, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    click.echo(line)


@audit.command("rotate-key")
@data_option
@click.option("--new-key-file", type=click.Path(dir_okay=False), required=True,
              help="Where to create the new private key (outside the data directory; must not exist).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_rotate_key(data_dir: str | None, new_key_file: str, as_json: bool) -> None:
    """Create a new signing key and record it in the ledger, endorsed by the current key."""
    settings = settings_for(data_dir)
    rec, pem = rotate_key(settings, Path(new_key_file).expanduser())
    if as_json:
        emit({"Seq": rec["seq"], "KeyFingerprint": rec["details"]["key_fingerprint"],
              "EndorsedBy": rec["details"]["endorsed_by"], "KeyFile": new_key_file, "PublicKeyPem": pem}, True)
        return
    click.echo(f"SigningKey record #{rec['seq']}: key {rec['details']['key_fingerprint']} endorsed by "
               f"{rec['details']['endorsed_by']}.\nSet FACELEDGER_LEDGER_KEY_FILE={new_key_file}, restart the "
               "service, and publish this public key to the auditors:")
    click.echo(pem, nl=False)


@audit.command("public-key")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_public_key(data_dir: str | None, as_json: bool) -> None:
    """Print the PEM public key that verifies this service's checkpoints."""
    pem = public_pem(load_signing_key(settings_for(data_dir), create=False))
    if as_json:
        emit({"PublicKeyPem": pem}, as_json)
    else:
        click.echo(pem, nl=False)


@audit.command("checkpoint")
@client_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_checkpoint(endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Sign the ledger head now (through the running service)."""
    out = own_call(endpoint, profile_file, "CreateCheckpoint", {})
    emit(out, as_json, lambda o: f"checkpoint #{o['Seq']} signs record #{o['SignedSeq']} ({o['SignedHash'][:16]}…)")


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp() if "T" in value or "-" in value \
            else float(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date or epoch seconds") from exc


@audit.command("show")
@data_option
@click.option("--operation", default=None)
@click.option("--key", "principal", default=None, help="Only records of this access key.")
@click.option("--collection", "collection_id", default=None)
@click.option("--since", default=None, help="ISO date/time (UTC) or epoch seconds.")
@click.option("--until", default=None)
@click.option("--after-seq", type=int, default=0)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_show(data_dir: str | None, operation: str | None, principal: str | None, collection_id: str | None,
               since: str | None, until: str | None, after_seq: int, limit: int, as_json: bool) -> None:
    """List ledger records with filters."""
    with open_catalog(settings_for(data_dir)) as catalog:
        rows = Ledger(catalog).records(after_seq=after_seq, limit=limit, operation=operation, principal=principal,
                                       collection_id=collection_id, since=_epoch(since), until=_epoch(until))

    def text(o: dict) -> str:
        lines = []
        for r in o["records"]:
            when = dt.datetime.fromtimestamp(r["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            d = r["details"]
            extra = " ".join(f"{k}={d[k]}" for k in ("purpose", "case", "threshold_applied", "face_ids",
                                                       "candidates") if k in d)
            lines.append(f"#{r['seq']:<6} {when} {r['principal'] or '-':<20} {r['operation']:<20} "
                         f"{r['collection_id'] or '-':<16} {extra}"[:220])
        return "\n".join(lines) or "no records"

    emit({"records": rows}, as_json, text)


@audit.command("export")
@click.argument("out_file", type=click.Path(dir_okay=False))
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_export(out_file: str, data_dir: str | None, as_json: bool) -> None:
    """Write every record as JSON lines, verifiable elsewhere with `audit verify --file`."""
    with open_catalog(settings_for(data_dir)) as catalog:
        try:
            n = Ledger(catalog).export(out_file)
        except OSError as exc:
            raise InvalidParameterError(f"Cannot write {out_file}: {exc.strerror}.") from exc
    emit({"Exported": n, "File": out_file}, as_json, lambda o: f"exported {o['Exported']} record(s) to {o['File']}")
