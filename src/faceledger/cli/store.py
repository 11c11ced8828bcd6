"""``faceledger store``: the catalog's store (FACELEDGER_STORE) — copy a SQLite catalog into PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidParameterError
from ..store.migrate import BATCH, migrate
from ..store.opening import open_url, parse
from .output import emit, handle_errors
from .serve import data_option, settings_for


@click.group("store")
def store() -> None:
    """The catalog's store: SQLite (embedded) or PostgreSQL."""


@store.command("migrate")
@click.option("--from", "source", default=None, metavar="sqlite:///PATH",
              help="The SQLite catalog to copy (default: the data directory's catalog.db).")
@click.option("--to", "target", required=True, metavar="postgresql://...", help="The PostgreSQL database to fill.")
@click.option("--batch", type=click.IntRange(min=1), default=BATCH, show_default=True,
              help="Rows per committed batch (an interrupted run resumes after the last one).")
@data_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def store_migrate(source: str | None, target: str, batch: int, data_dir: str | None, as_json: bool) -> None:
    """Copy the catalog, vectors and ledger into PostgreSQL; rerun to resume, a second run copies nothing."""
    settings = settings_for(data_dir)
    src, dst = parse(source or "", settings.data_dir), parse(target)
    if src.is_postgres or not dst.is_postgres:
        raise InvalidParameterError("store migrate copies --from sqlite:///PATH --to postgresql://...")
    if not Path(src.target).is_file():
        raise InvalidParameterError(f"No catalog at {src.target}: check --from / --data.")
    with open_url(src, settings.data_dir) as s, open_url(dst, settings.data_dir) as t:
        report = migrate(s, t, batch=batch)
    out = report.as_dict()
    emit(out, as_json, lambda o: (
        f"copied {o['CopiedTotal']} row(s) ("
        + ", ".join(f"{k} {v}" for k, v in o["Copied"].items() if v) + "); "
        f"ledger head {o['LedgerHeadSeq']}:{o['LedgerHeadHash'] or '-'}, verified"))
