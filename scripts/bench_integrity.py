"""What the catalog integrity checks and a full ledger verification cost, on a catalog of N faces and N records.

Builds (once, in --dir) a catalog with N enrolled faces (128-d vectors, as
IndexFaces stores them) and N ledger records written by the service writer
(checkpoint every 1000), then times SQLite's ``quick_check`` (the start-up
default), ``integrity_check`` (``FACELEDGER_STARTUP_CHECK=full`` and
``audit verify``) and the whole ``audit verify`` of the data directory.
Usage: PYTHONPATH=src .venv/bin/python scripts/bench_integrity.py [--n 100000] [--dir /tmp/flbench]
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

import numpy as np

from faceledger.service.audit_trail import append_checkpoint, last_signed_seq, open_verify
from faceledger.service.signing_key import load_signing_key
from faceledger.settings import Settings
from faceledger.store.catalog import CATALOG_FILE, Catalog
from faceledger.store.integrity import problems
from faceledger.store.ledger import Ledger


def build(settings: Settings, n: int) -> None:
    key = load_signing_key(settings, create=True)
    rng = np.random.default_rng(0)
    with Catalog.open(settings.data_dir) as catalog:
        ledger = Ledger(catalog)
        with catalog.transaction() as tx:
            catalog.create_collection(tx, "people", "dlib-resnet128-5pt-1", {}, time.time())
        for start in range(0, n, 5000):
            with catalog.transaction() as tx:
                faces = [{"face_id": str(uuid.uuid4()), "image_id": str(uuid.uuid4()),
                          "external_image_id": f"img{start + i}.jpg",
                          "bbox": {"Width": 0.3, "Height": 0.4, "Left": 0.2, "Top": 0.1}, "confidence": 99.0,
                          "extra": {"Quality": {"Sharpness": 80.0, "Brightness": 60.0}},
                          "image_sha256": uuid.uuid4().hex * 2,
                          "vector": rng.standard_normal(128).astype(np.float32)}
                         for i in range(min(5000, n - start))]
                catalog.add_faces(tx, "people", faces)
                for face in faces:
                    rec = ledger.append(tx, operation="IndexFaces", principal="AKIABENCH0000000000",
                                        collection_id="people",
                                        details={"image_sha256": face["image_sha256"], "face_ids": [face["face_id"]],
                                                 "purpose": "general", "request_id": str(uuid.uuid4())})
                    if rec["seq"] % 1000 == 0:
                        append_checkpoint(ledger, tx, key)


def writer_overhead(settings: Settings, records: int = 3000) -> str:
    """Per-record cost of the checkpoint rule (the last-checkpoint lookup, and signing every 1000)."""
    key = load_signing_key(settings, create=False)
    out = []
    with Catalog.open(settings.data_dir) as catalog:
        ledger = Ledger(catalog)
        for rule in (False, True):
            t0 = time.perf_counter()
            with catalog.transaction() as tx:
                for i in range(records):
                    rec = ledger.append(tx, operation="DetectFaces", principal="AKIABENCH0000000000",
                                        collection_id=None, details={"request_id": str(i), "faces": 1})
                    if rule and rec["seq"] - last_signed_seq(ledger) >= 1000:
                        append_checkpoint(ledger, tx, key)
                tx.conn.rollback()  # measure only; leave the catalog as built
                tx.conn.execute("BEGIN")
            out.append((time.perf_counter() - t0) / records * 1e6)
        size = len(ledger.latest("Checkpoint")["details"]["record_hashes"])  # type: ignore[index]
    return f"{out[0]:.0f} us/record plain, {out[1]:.0f} us/record with the rule; {size} short hashes per checkpoint"


def timed(label: str, fn) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<34} {time.perf_counter() - t0:8.2f} s   {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/faceledger-bench-integrity")
    args = parser.parse_args()
    root = Path(args.dir)
    settings = Settings(data_dir=root / "data", ledger_key_file=str(root / "key" / "ledger.key"))
    db = settings.data_dir / CATALOG_FILE
    if not db.exists():
        t0 = time.perf_counter()
        build(settings, args.n)
        print(f"built {args.n} faces + records in {time.perf_counter() - t0:.1f} s")
    print(f"catalog.db {db.stat().st_size / 2**20:.1f} MiB")
    timed("PRAGMA quick_check", lambda: problems(db, "quick") or "ok")
    timed("PRAGMA integrity_check", lambda: problems(db, "full") or "ok")
    key = load_signing_key(settings, create=False)
    timed("audit verify (check + chain + sigs)",
          lambda: open_verify(settings, [key.public_key()], 1000, []).reason[:60])
    timed("writer: 2 x 3000 appends", lambda: writer_overhead(settings))


if __name__ == "__main__":
    main()
