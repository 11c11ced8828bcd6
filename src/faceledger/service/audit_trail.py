"""The audit operations run on a data directory or an export: verify, anchor, sign, rotate the key.

The CLI's ``audit`` group calls these; they hold the rules (what is trusted,
what a head file looks like, when a checkpoint is written on rotation) so the
transport holds none. Verification itself is :mod:`.verification`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import IntegrityFailedError, InvalidParameterError
from ..settings import Settings
from ..store.db import Transaction
from ..store.integrity import problems
from ..store.ledger import Ledger, read_catalog_file, read_export, read_postgres
from ..store.opening import open_catalog, store_of
from ..store.opening import problems as store_problems
from ..store.protocols import CatalogStore, LedgerStore
from .checkpoints import (
    CHECKPOINT,
    SIGNING_KEY,
    anchor,
    checkpoint_details,
    fingerprint,
    load_public_keys,
    public_pem,
    signing_key_details,
)
from .signing_key import LEGACY_KEY_FILE, key_path, load_signing_key, log, read_key, write_new_key
from .verification import Head, LedgerVerifier, Verdict


def last_signed_seq(ledger: LedgerStore) -> int:
    """The record the latest checkpoint signs: the one just before it (a checkpoint signs the head
    inside the transaction that appends it). Read from the index: this runs on every append."""
    return max(0, ledger.latest_seq(CHECKPOINT) - 1)


def append_checkpoint(ledger: LedgerStore, tx: Transaction, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign the head (inside ``tx``), listing every record since the last checkpoint."""
    head = ledger.head()
    if head is None:
        raise InvalidParameterError("The ledger is empty: nothing to sign.")
    since = min(last_signed_seq(ledger), head["seq"] - 1)
    hashes = [h for _, h in ledger.hashes_after(since)]
    return ledger.append(tx, operation=CHECKPOINT, principal=None, collection_id=None,
                         details=checkpoint_details(key, head["seq"], head["hash"], since + 1, hashes))


def trusted_keys(paths: Iterable[Path], settings: Settings | None) -> list[Ed25519PublicKey]:
    """The auditor's keys from ``paths``; with none, the public half of the configured signing key."""
    keys = [k for p in paths for k in load_public_keys(Path(p).read_bytes())]
    if keys or settings is None:
        return keys
    path = key_path(settings)
    return [read_key(path).public_key()] if path.is_file() else []


def load_heads(values: Iterable[str], heads_file: str | None) -> list[Head]:
    """``SEQ:HASH`` values, plus a file of them or of ``audit anchor`` JSON lines."""
    items = [(v, "--expect-head") for v in values]
    if heads_file:
        text = Path(heads_file).read_text(encoding="utf-8")
        items += [(line.strip(), f"{heads_file} line {n}") for n, line in enumerate(text.splitlines(), 1)
                  if line.strip() and not line.lstrip().startswith("#")]
    return [_head(v, where) for v, where in items]


def _head(value: str, where: str) -> Head:
    try:
        if value.startswith("{"):
            doc = json.loads(value)
            seq, digest = int(doc["seq"]), str(doc["hash"])
        else:
            left, _, digest = value.partition(":")
            seq = int(left)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidParameterError(f"{where}: {value[:80]!r} is not SEQ:HASH or an anchor line "
                                    f"({str(exc)[:120]}).") from None
    if seq < 1 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidParameterError(f"{where}: a head is SEQ:HASH with seq >= 1 and 64 lower-case hex digits.")
    return Head(seq, digest)


def verify_export(path: Path, keys: list[Ed25519PublicKey], every: int, heads: list[Head]) -> Verdict:
    verifier = LedgerVerifier(keys, every, heads)
    for record in read_export(path):
        verifier.add(record)
    return verifier.finish()


def open_verify(settings: Settings, keys: list[Ed25519PublicKey], every: int, heads: list[Head]) -> Verdict:
    """Verify the store's ledger (the data directory's catalog file, or PostgreSQL), damaged or not:
    never a traceback."""
    store = store_of(settings)
    if store.is_postgres:
        damage = store_problems(store, "full")
        records: Iterator[dict[str, Any]] = read_postgres(store.target)
    else:
        db = Path(store.target)
        if not db.is_file():
            raise InvalidParameterError(f"No catalog at {db}: check --data / FACELEDGER_DATA_DIR / FACELEDGER_STORE.")
        damage = problems(db, "full")
        records = read_catalog_file(db)
    verifier = LedgerVerifier(keys, every, heads)
    error = None
    try:
        for record in records:
            verifier.add(record)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file makes the reader raise is evidence
        error = f"{type(exc).__name__}: {exc}"
    return verifier.finish(read_error=error, database=damage)


def anchor_head(settings: Settings) -> str:
    """The verified head, signed, as one JSON line; refused when the ledger does not verify."""
    key = load_signing_key(settings, create=False)
    verdict = open_verify(settings, [key.public_key()], settings.checkpoint_every, [])
    if not verdict.ok:
        raise IntegrityFailedError(f"Not anchoring a ledger that does not verify: {verdict.reason}")
    if verdict.last_intact is None:
        raise InvalidParameterError("The ledger is empty: nothing to anchor.")
    head = {"seq": verdict.last_intact["seq"], "hash": verdict.last_intact["hash"]}
    return json.dumps(anchor(key, head, time.time()), sort_keys=True, separators=(",", ":"))


def record_rotation(ledger: LedgerStore, tx: Transaction, old: Ed25519PrivateKey,
                    new: Ed25519PrivateKey) -> dict[str, Any]:
    """In ``tx``: a checkpoint by the old key, the new key's SigningKey record endorsed by it, and a
    checkpoint by the new key (so the new key vouches for everything at once, whatever the interval)."""
    if ledger.head() is not None:
        append_checkpoint(ledger, tx, old)
    rec = ledger.append(tx, operation=SIGNING_KEY, principal=None, collection_id=None,
                        details=signing_key_details(new, old, fingerprint(old), ledger.head()))
    append_checkpoint(ledger, tx, new)
    return rec


def _rotate(catalog: CatalogStore, old: Ed25519PrivateKey, new_path: Path) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    new = write_new_key(new_path)
    try:
        with catalog.transaction() as tx:
            rec = record_rotation(Ledger(catalog), tx, old, new)
    except BaseException:
        new_path.unlink(missing_ok=True)  # no key the ledger does not name
        raise
    return new, rec


def rotate_key(settings: Settings, new_path: Path) -> tuple[dict[str, Any], str]:
    """Create the key at ``new_path`` and record the rotation (``faceledger audit rotate-key``)."""
    old = load_signing_key(settings, create=False)
    key_path(Settings(data_dir=settings.data_dir, ledger_key_file=str(new_path)))  # refuses the data dir
    with open_catalog(settings) as catalog:
        new, rec = _rotate(catalog, old, new_path)
    return rec, public_pem(new)


def retire_legacy_key(settings: Settings, catalog: CatalogStore, legacy: Ed25519PrivateKey) -> Ed25519PrivateKey:
    """Rotate from a key found in the data directory to a fresh one at the configured path, delete the old."""
    new, _ = _rotate(catalog, legacy, key_path(settings))
    (Path(settings.data_dir) / LEGACY_KEY_FILE).unlink(missing_ok=True)
    log.warning("retired the ledger signing key found in the data directory (%s): whoever held the data "
                "could read it. The ledger records the rotation; the new key is %s. Publish its public key "
                "(faceledger audit public-key) to the auditors.", fingerprint(new), key_path(settings))
    return new
