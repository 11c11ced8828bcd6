"""Write the ``v2-catalog`` fixture: a data directory as faceledger wrote it before vectors were sealed.

Run with the source of that faceledger (commit 2d3df54, schema version 2) first on the path:

    git archive 2d3df54 src | tar -x -C /tmp/v2
    PYTHONPATH=/tmp/v2/src python tests/store/data/make_v2_catalog.py tests/store/data/v2-catalog

Only public store APIs are used, so the file is exactly what that code writes. The vectors are
``V2_VECTORS`` below, which the upgrade test recomputes.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from pathlib import Path

import numpy as np


def v2_vectors() -> np.ndarray:
    return np.random.default_rng(2026).standard_normal((5, 128)).astype(np.float32)


def face_id(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def main(out: Path) -> None:
    from faceledger.store import Catalog, Ledger

    out.mkdir(parents=True)
    with Catalog.open(out) as cat:
        ledger = Ledger(cat)
        with cat.transaction() as tx:
            cat.create_collection(tx, "people", "dlib-resnet128-5pt-1", {}, 1_700_000_000.0)
            cat.add_faces(tx, "people", [
                {"face_id": face_id(i), "image_id": str(uuid.UUID(int=100 + i)),
                 "bbox": {"Width": 0.5, "Height": 0.5, "Left": 0.1, "Top": 0.1},
                 "confidence": 99.0, "created_at": 1_700_000_000.0 + i, "vector": v}
                for i, v in enumerate(v2_vectors())])
            cat.create_user(tx, "people", "u1", 1_700_000_100.0)
            cat.associate_faces(tx, "people", "u1", [face_id(0), face_id(1)])
            cat.create_key(tx, "admin", "fixture", None)
            ledger.append(tx, operation="IndexFaces", principal=None, collection_id="people",
                          details={"faces": 5}, at=1_700_000_200.0)
    conn = sqlite3.connect(out / "catalog.db")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("VACUUM")
    conn.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
