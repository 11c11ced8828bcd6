"""``faceledger audit``: verify, show and export the ledger (reads the data directory)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ..errors import InvalidParameterError
from ..service.audit import data_dir_pem, verification
from ..service.checkpoints import load_or_create_key, public_pem
from ..store.catalog import Catalog
from ..store.ledger import Ledger, read_export
from .client import client_options, own_call
from .output import emit, handle_errors
from .serve import data_option, settings_for


@click.group()
def audit() -> None:
    """The tamper-evident ledger: every operation on biometric data, who, when, why, what came back."""


@audit.command("verify")
@data_option
@click.option("--file", "export_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Verify an exported ledger file instead of the data directory.")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="PEM public key to check checkpoint signatures (default: the data directory's key).")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_verify(data_dir: str | None, export_file: str | None, public_key: str | None, as_json: bool) -> None:
    """Check the hash chain and the signed checkpoints; name the first broken record. Exit 13 if broken."""
    if export_file:
        records = read_export(export_file)
        pem = Path(public_key).read_bytes() if public_key else None
    else:
        settings = settings_for(data_dir)
        with Catalog.open(settings.data_dir) as catalog:
            records = list(Ledger(catalog).iter_all())
        pem = Path(public_key).read_bytes() if public_key else data_dir_pem(settings.data_dir)
    out = verification(records, pem)
    ok = out["ok"]
    emit(out, as_json, _verify_text if pem else _verify_text_unsigned)
    if not ok:
        sys.exit(13)


def _signed(o: dict) -> str:
    if o["last_signed_seq"] is None:
        return "no signed checkpoint yet (`audit checkpoint` signs the head)"
    return f"{o['checkpoints']} signed checkpoint(s), last signed #{o['last_signed_seq']}"


def _verify_text(o: dict) -> str:
    if not o["ok"]:
        return f"ledger BROKEN at record {o['first_bad_seq']}: {o['reason']}"
    return f"ledger OK: {o['checked']} record(s), {_signed(o)}, head {(o['head_hash'] or '-')[:16]}…"


def _verify_text_unsigned(o: dict) -> str:
    if not o["ok"]:
        return _verify_text(o)
    return (f"ledger OK: {o['checked']} record(s), head {(o['head_hash'] or '-')[:16]}…; "
            "signatures not checked (no public key)")


@audit.command("public-key")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def audit_public_key(data_dir: str | None, as_json: bool) -> None:
    """Print the PEM public key that verifies this service's checkpoints."""
    pem = public_pem(load_or_create_key(settings_for(data_dir).data_dir))
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
    with Catalog.open(settings_for(data_dir).data_dir) as catalog:
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
    with Catalog.open(settings_for(data_dir).data_dir) as catalog:
        try:
            n = Ledger(catalog).export(out_file)
        except OSError as exc:
            raise InvalidParameterError(f"Cannot write {out_file}: {exc.strerror}.") from exc
    emit({"Exported": n, "File": out_file}, as_json, lambda o: f"exported {o['Exported']} record(s) to {o['File']}")
