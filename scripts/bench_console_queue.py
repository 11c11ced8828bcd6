"""How long the console's review queue takes over a ledger of N searches (it reads the review index).

    PYTHONPATH=src python scripts/bench_console_queue.py --searches 20000

Builds a throwaway data directory with a real catalog and ledger (fake
engine), appends N search records with two candidates each, decides every
candidate of all but every tenth search (or of all, ``--all-decided``), and times ``review_queue``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from faceledger.engine import Engine, EngineSettings
from faceledger.service import Principal, Service
from faceledger.service.context import RequestContext
from faceledger.service.core import Call
from faceledger.service.queue import review_queue
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--searches", type=int, default=20000)
    ap.add_argument("--all-decided", action="store_true",
                    help="decide every candidate: the worst case, a scan of the whole ledger that finds nothing")
    ap.add_argument("--other-records", type=int, default=0, help="non-search ledger records to add")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), retention_sweep_s=0)
        engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
        svc = Service(settings, Catalog.open(settings.data_dir), VectorIndex(),
                      EnginePool(EngineSettings(), engine=engine))
        try:
            searcher = Principal("AKIASEARCHER", "x", "searcher")
            with svc.catalog.transaction() as tx:
                for i in range(args.searches):
                    # as a search writes its record (Service.record), so the review index sees it
                    rec = svc.record(tx, Call("SearchFacesByImage", {}, searcher, RequestContext()), "c", {
                        "confirmations_required": 1,
                        "candidates": [{"FaceId": f"f{i}a", "Similarity": 90.0},
                                       {"FaceId": f"f{i}b", "Similarity": 80.0}]})
                    if i % 10 or args.all_decided:
                        for c in ("a", "b"):
                            svc.catalog.add_review(tx, rec["seq"], f"f{i}{c}", "AKIAREVIEWER", "REJECT", "r", 0.0)
                        svc.catalog.drop_pending_reviews(tx, [rec["seq"]])  # what ReviewCandidate does then
                for i in range(args.other_records):  # the rest of a ledger: enrolments, sign-ins, ...
                    svc.ledger.append(tx, operation="IndexFaces", principal="AKIAENROLLER", collection_id="c",
                                      details={"purpose": "general", "face_ids": [f"e{i}"]})
            reviewer = Principal("AKIAREVIEWER2", "x", "reviewer")
            for _ in range(2):
                t0 = time.perf_counter()
                items = review_queue(svc, reviewer)
                dt = time.perf_counter() - t0
            print(f"{args.searches} searches, {len(items)} listed (cap 200): review_queue {dt * 1000:.0f} ms")
        finally:
            svc.close()


if __name__ == "__main__":
    main()
