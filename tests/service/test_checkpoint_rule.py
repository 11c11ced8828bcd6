"""The writer's checkpoint rule: a checkpoint once `checkpoint_every` records follow the last signed one."""

from __future__ import annotations

from pathlib import Path

from faceledger.engine import Engine, EngineSettings
from faceledger.service import Service, create
from faceledger.service.checkpoints import CHECKPOINT, SIGNING_KEY, public_pem
from faceledger.service.signing_key import read_key
from faceledger.service.verification import LedgerVerifier
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder


def open_service(tmp_path: Path, every: int) -> Service:
    settings = Settings(data_dir=tmp_path / "data", checkpoint_every=every,
                        ledger_key_file=str(tmp_path / "op" / "ledger.key"))
    settings.data_dir.mkdir(exist_ok=True)
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    return create(settings, Catalog.open(settings.data_dir), VectorIndex(), EnginePool(EngineSettings(), engine=engine))


def test_records_the_service_writes_itself_count_towards_a_checkpoint(tmp_path: Path) -> None:
    """The old rule (seq % N == 0, only for API calls) skipped a checkpoint when the Nth record was PolicyLoaded."""
    svc = open_service(tmp_path, every=2)
    try:
        ops = [r["operation"] for r in Ledger(svc.catalog).records()]
        assert ops == [SIGNING_KEY, "PolicyLoaded", CHECKPOINT]
        cp = Ledger(svc.catalog).records(operation=CHECKPOINT)[0]["details"]
        assert (cp["signed_seq"], cp["covers_from"], len(cp["record_hashes"])) == (2, 1, 2)
    finally:
        svc.close()


def test_an_on_demand_checkpoint_restarts_the_interval(tmp_path: Path) -> None:
    svc = open_service(tmp_path, every=3)
    ledger = Ledger(svc.catalog)
    try:
        with svc.catalog.transaction() as tx:
            svc.checkpoint(tx)  # #3 signs #2; the next automatic one is due at #5
            for i in range(5):
                svc.append(tx, operation="CreateCollection", principal="AKIA", collection_id=f"c{i}", details={})
        cps = [(r["seq"], r["details"]["signed_seq"]) for r in ledger.records(operation=CHECKPOINT)]
        assert cps == [(3, 2), (6, 5), (9, 8)]  # N seqs after the signed one, the checkpoint included
        key = read_key(Path(svc.settings.ledger_key_file)).public_key()
        verifier = LedgerVerifier([key], 3)
        for record in ledger.iter_all():
            verifier.add(record)
        verdict = verifier.finish()
        assert verdict.ok and verdict.last_signed_seq == 8, verdict.reason
        assert public_pem(key) in ledger.records(operation=SIGNING_KEY)[0]["details"]["public_key"]
    finally:
        svc.close()


def test_a_signing_key_record_without_a_details_object_does_not_stop_the_service(tmp_path: Path) -> None:
    """A forged SigningKey whose details are a JSON list made every start die with an AttributeError
    traceback; the service names its key afresh instead (verify reports the forged record)."""
    import sqlite3

    open_service(tmp_path, every=0).close()
    conn = sqlite3.connect(tmp_path / "data" / "catalog.db")
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("UPDATE ledger SET details = '[1]' WHERE operation = 'SigningKey'")
    conn.commit()
    conn.close()
    svc = open_service(tmp_path, every=0)
    try:
        ops = [r["operation"] for r in Ledger(svc.catalog).records()]
        assert ops.count(SIGNING_KEY) == 2 and ops[-1] == SIGNING_KEY, ops
    finally:
        svc.close()
