"""Write the ``v5-datadir`` fixture: a data directory as faceledger wrote it at schema version 5,
before model packs (every collection implicitly dlib's 128-d Euclidean ResNet).

Run with the source of that faceledger (commit be34ba5, schema version 5) first on the path:

    git archive be34ba5 src | tar -x -C /tmp/v5
    PYTHONPATH=/tmp/v5/src python tests/service/data/make_v5_datadir.py tests/service/data/v5-datadir

It drives the real service (real engine, in-process) through the operations a deployment
runs: a collection keeping thumbnails, six lfw_dev faces, a user, searches and a comparison.
``expected.json`` holds the responses' matches and the ledger head as that code gave them,
and the cohort S-norm table that code builds on a small seeded descriptor set, for the
upgrade test to recompute bit for bit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np

LFW = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "lfw_dev"
FACES = [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("Abdullah_Gul", 1), ("Abdullah_Gul", 2),
         ("Al_Gore", 1), ("Al_Gore", 2)]
PROBES = [("Aaron_Peirsol", 3), ("Abdullah_Gul", 3)]
AT = 1_760_000_000.0  # every call's time: the records differ from a rerun only by what the code did


def image(name: str, n: int) -> bytes:
    return (LFW / name / f"{name}_{n:04d}.jpg").read_bytes()


def small_cohort_set() -> tuple[np.ndarray, np.ndarray]:
    """600 seeded unit-ish 128-d descriptors in 200 identities: enough for K=200 neighbourhoods."""
    rng = np.random.default_rng(2027)
    centres = rng.standard_normal((200, 128))
    desc = np.repeat(centres, 3, axis=0) + 0.6 * rng.standard_normal((600, 128))
    desc = (0.6 * desc / np.linalg.norm(desc, axis=1, keepdims=True)).astype(np.float32)
    return desc, np.repeat(np.arange(200), 3)


def table_digest(table: object) -> str:
    """SHA-256 of a table's unrounded float64 arrays (its JSON rounds them)."""
    import hashlib

    h = hashlib.sha256()
    for name in ("distances", "log10_fmr", "fnmr"):
        h.update(np.ascontiguousarray(getattr(table, name), dtype=np.float64).tobytes())
    return h.hexdigest()


def matches(out: dict, key: str = "FaceMatches") -> list:
    return [{k: m[k] for k in ("Similarity", "Distance", "EstimatedFalseMatchRate")}
            | {"FaceId": m["Face"].get("FaceId")} for m in out[key]]


def main(out: Path) -> None:
    from faceledger.engine import Engine, EngineSettings
    from faceledger.engine.scoring import build_cohort_table
    from faceledger.service import Principal, create
    from faceledger.service.core import Service
    from faceledger.service.workers import EnginePool
    from faceledger.settings import Settings

    data = out / "data"
    data.mkdir(parents=True)
    settings = Settings(data_dir=data, ledger_key_file=str(out / "ledger_signing.key"), checkpoint_every=5)
    catalog, index = Service.open_store(settings)
    svc = create(settings, catalog, index, EnginePool(EngineSettings(), engine=Engine()))
    admin = Principal(access_key_id="AKIAADMIN00000000000", secret="x", role="admin")

    def run(op: str, **params: object) -> dict:
        return svc.dispatch(op, params, admin, {"request_id": f"fixture-{op}"})

    expected: dict = {}
    try:
        run("CreateCollection", CollectionId="people", Tags={"faceledger:thumbnails": "true"})
        ids = []
        for name, n in FACES:
            rec = run("IndexFaces", CollectionId="people", Image={"Bytes": image(name, n)}, ExternalImageId=f"{name}_{n}")
            ids.append(rec["FaceRecords"][0]["Face"]["FaceId"])
        run("CreateUser", CollectionId="people", UserId="aaron")
        run("AssociateFaces", CollectionId="people", UserId="aaron", FaceIds=ids[:2])
        expected["face_ids"] = ids
        expected["search_by_image"] = [
            matches(run("SearchFacesByImage", CollectionId="people", Image={"Bytes": image(name, n)},
                        FaceMatchThreshold=0))
            for name, n in PROBES]
        expected["search_faces"] = matches(run("SearchFaces", CollectionId="people", FaceId=ids[2],
                                               FaceMatchThreshold=0))
        expected["compare"] = matches(run("CompareFaces", SourceImage={"Bytes": image(*FACES[0])},
                                          TargetImage={"Bytes": image(*PROBES[0])}, SimilarityThreshold=0))
        head = svc.ledger.head()
        expected["ledger_head"] = {"seq": head["seq"], "hash": head["hash"]}
    finally:
        svc.close()
    desc, labels = small_cohort_set()
    table = build_cohort_table(desc, labels, "fixture-small")
    expected["cohort_table"] = table.to_json()
    expected["cohort_table_sha256"] = table_digest(table)
    (out / "expected.json").write_text(json.dumps(expected, sort_keys=True) + "\n")
    conn = sqlite3.connect(data / "catalog.db")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("VACUUM")
    conn.close()
    for leftover in ("catalog.db-wal", "catalog.db-shm"):
        if (data / leftover).exists():
            os.remove(data / leftover)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
