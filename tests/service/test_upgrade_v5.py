"""A data directory written at schema v5 (before model packs) opens, searches identically and verifies.

The fixture ``data/v5-datadir`` was written by commit be34ba5's own code
(``data/make_v5_datadir.py``): real engine, six lfw_dev faces in a collection that
keeps thumbnails, a user, searches, a comparison, signed checkpoints. Opening it
migrates the catalog to v6 (dim and metric per collection, the faces table rebuilt);
nothing a user can see may change: same faces, thumbnails, scores to the last bit,
and a ledger that still verifies against its published head.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.engine.registry import MODEL_VERSION
from faceledger.engine.scoring import build_cohort_table
from faceledger.service import create
from faceledger.service.core import Service
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.schema import SCHEMA_VERSION

from ..conftest import data_path

FIXTURE = Path(__file__).parent / "data" / "v5-datadir"


def _maker():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_v5_datadir", FIXTURE.parent / "make_v5_datadir.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def copy(tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "v5"
    shutil.copytree(FIXTURE, out)
    for p in [out, *out.rglob("*")]:
        p.chmod(0o700 if p.is_dir() else 0o600)
    return out


def test_a_v5_data_directory_opens_searches_identically_and_verifies(copy) -> None:  # type: ignore[no-untyped-def]
    data_path("lfw_dev")
    make = _maker()
    expected = json.loads((copy / "expected.json").read_text())
    settings = Settings(data_dir=copy / "data", ledger_key_file=str(copy / "ledger_signing.key"), checkpoint_every=5)
    catalog, index = Service.open_store(settings)
    svc = create(settings, catalog, index, EnginePool(EngineSettings(), engine=Engine()))
    try:
        conn = svc.catalog.connection()
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION == 7
        people = svc.catalog.get_collection("people")
        assert (people["model_version"], people["dim"], people["metric"]) == (MODEL_VERSION, 128, "euclidean")
        assert people["face_count"] == 6 and people["user_count"] == 1
        ids, vectors = svc.catalog.iter_vectors("people")
        assert sorted(ids) == sorted(expected["face_ids"]) and vectors.shape == (6, 128)
        assert all(svc.catalog.get_thumbnail(f) for f in ids)  # the v6 rebuild kept them
        head = svc.ledger.head()
        assert (head["seq"], head["hash"]) == (expected["ledger_head"]["seq"], expected["ledger_head"]["hash"])

        def run(op: str, **params):  # type: ignore[no-untyped-def]
            return svc.dispatch(op, params, _admin(), {"request_id": op})

        got = [make.matches(run("SearchFacesByImage", CollectionId="people", Image={"Bytes": make.image(n, i)},
                                FaceMatchThreshold=0)) for n, i in make.PROBES]
        assert got == expected["search_by_image"]
        assert make.matches(run("SearchFaces", CollectionId="people", FaceId=expected["face_ids"][2],
                                FaceMatchThreshold=0)) == expected["search_faces"]
        assert make.matches(run("CompareFaces", SourceImage={"Bytes": make.image(*make.FACES[0])},
                                TargetImage={"Bytes": make.image(*make.PROBES[0])},
                                SimilarityThreshold=0)) == expected["compare"]
        users = run("SearchUsers", CollectionId="people", FaceId=expected["face_ids"][1])
        assert users["FaceModelVersion"] == "1.1"
        # a new face still goes in as a 128-d vector of the built-in pack
        run("IndexFaces", CollectionId="people", Image={"Bytes": make.image(*make.PROBES[1])})
        assert svc.catalog.iter_vectors("people")[1].shape == (7, 128)
    finally:
        svc.close()
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(copy / "data"),
           "FACELEDGER_LEDGER_KEY_FILE": str(copy / "ledger_signing.key")}
    head = expected["ledger_head"]
    verdict = subprocess.run(
        [sys.executable, "-m", "faceledger.cli.main", "audit", "verify", "--checkpoint-every", "5",
         "--expect-head", f"{head['seq']}:{head['hash']}", "--json"],
        env=env, capture_output=True, text=True, timeout=300)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    out = json.loads(verdict.stdout)
    assert out["ok"] is True and out["checked"] > head["seq"], out


def _admin():  # type: ignore[no-untyped-def]
    from faceledger.service import Principal

    return Principal(access_key_id="AKIAADMIN00000000000", secret="x", role="admin")


def test_the_cohort_table_is_rebuilt_bit_for_bit() -> None:
    """The S-norm table the v5 code built on a small seeded set, rebuilt by today's (metric-aware) code."""
    make = _maker()
    expected = json.loads((FIXTURE / "expected.json").read_text())
    desc, labels = make.small_cohort_set()
    table = build_cohort_table(desc, labels, "fixture-small")
    assert make.table_digest(table) == expected["cohort_table_sha256"]
    assert table.to_json() == expected["cohort_table"]  # no dim/metric keys: the built-in descriptors
    assert np.isfinite(table.log10_fmr).all()
