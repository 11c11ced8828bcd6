"""Issues 5 and 6: forgeries by whoever holds the data directory fail `faceledger audit verify` (real CLI).

The ledger is written by the real service writer (fake engine, real SQLite,
real signing key kept outside the data directory); every forgery is done the
way an attacker with the file would: raw SQLite, triggers dropped, hashes
recomputed, checkpoints deleted or re-signed with a key they hold.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.service import Principal, Service, create
from faceledger.service.checkpoints import checkpoint_details, signing_key_details
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import GENESIS_HASH, record_hash
from faceledger.store.rows import dumps
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder

FACELEDGER = [sys.executable, "-m", "faceledger.cli.main"]
EVERY = 5
ADMIN = Principal(access_key_id="AKIAADMIN00000000000", secret="x", role="admin")


def open_service(settings: Settings) -> Service:
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    return create(settings, Catalog.open(settings.data_dir), VectorIndex(),
                   EnginePool(EngineSettings(), engine=engine))


def write_ledger(settings: Settings, collections: int, prefix: str = "c") -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    svc = open_service(settings)
    try:
        for i in range(collections):
            svc.dispatch("CreateCollection", {"CollectionId": f"{prefix}{i:03d}"}, ADMIN, {"request_id": f"r{i}"})
    finally:
        svc.close()


@pytest.fixture
def site(tmp_path: Path) -> Settings:
    """A data directory with 51 ledger records (a checkpoint after every 5); the key lives elsewhere."""
    settings = Settings(data_dir=tmp_path / "data", checkpoint_every=EVERY,
                        ledger_key_file=str(tmp_path / "operator" / "ledger.key"))
    write_ledger(settings, 39)
    assert len(rows(settings)) == 51
    return settings


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(settings.data_dir),
           "FACELEDGER_LEDGER_KEY_FILE": settings.ledger_key_file,
           "FACELEDGER_CHECKPOINT_EVERY": str(EVERY)}
    return subprocess.run([*FACELEDGER, *args], capture_output=True, text=True, env=env, timeout=120)


def verify(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    out = cli(settings, "audit", "verify", "--json", *args)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def rows(settings: Settings) -> list[dict[str, Any]]:
    conn = sqlite3.connect(settings.data_dir / "catalog.db")
    conn.row_factory = sqlite3.Row
    out = [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY seq")]
    conn.close()
    for r in out:
        r["details"] = json.loads(r["details"])
    return out


def rewrite(settings: Settings, records: list[dict[str, Any]], *, rehash_from: int = 1) -> None:
    """Replace the whole ledger table with ``records``, re-chained from ``rehash_from`` as a forger would."""
    prev = GENESIS_HASH
    for i, r in enumerate(records, start=1):
        if i >= rehash_from:
            r["prev_hash"] = prev
            r["hash"] = record_hash(r)
        prev = r["hash"]
    conn = sqlite3.connect(settings.data_dir / "catalog.db")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_update")
    conn.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    conn.execute("DELETE FROM ledger")
    conn.executemany(
        "INSERT INTO ledger(seq, at, principal, operation, collection_id, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r["seq"], r["at"], r["principal"], r["operation"], r["collection_id"], dumps(r["details"]),
          r["prev_hash"], r["hash"]) for r in records])
    conn.commit()
    conn.close()


def edit(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "details": {**record["details"], "request_id": "forged"}}


def test_intact_ledger_verifies_here_and_elsewhere(site: Settings, tmp_path: Path) -> None:
    rc, out = verify(site)
    assert rc == 0 and out["ok"] and out["records"] == 51 and out["checkpoints"] == 10
    assert not (site.data_dir / "ledger_signing.key").exists()  # the key is not in the data directory
    pub = tmp_path / "published.pem"
    pub.write_text(cli(site, "audit", "public-key").stdout)
    export = tmp_path / "ledger.jsonl"
    assert cli(site, "audit", "export", str(export)).returncode == 0
    rc, out = verify(site, "--file", str(export), "--public-key", str(pub))
    assert rc == 0 and out["ok"], out


def test_edit_seq_10_of_50_and_rehash_is_named_exactly(site: Settings) -> None:
    """Issue 6: this reported first_bad_seq=20 with checked=50."""
    records = rows(site)
    records[9] = edit(records[9])
    rewrite(site, records, rehash_from=10)
    rc, out = verify(site)
    assert rc == 13 and not out["ok"]
    assert (out["first_bad_seq"], out["checked"], out["last_intact"]["seq"]) == (10, 9, 9), out["reason"]
    assert "signed a different hash" in out["reason"]
    assert out["last_intact"]["hash"] == rows(site)[8]["hash"]


def test_edit_delete_every_checkpoint_renumber_rehash_fails(site: Settings, tmp_path: Path) -> None:
    records = rows(site)
    records[9] = edit(records[9])
    kept = [r for r in records if r["operation"] != "Checkpoint"]
    for seq, r in enumerate(kept, start=1):
        r["seq"] = seq
    rewrite(site, kept)
    rc, out = verify(site)
    assert rc == 13 and out["first_bad_seq"] <= 10 and out["checkpoints"] == 0
    assert "no valid checkpoint" in out["reason"]
    export = tmp_path / "forged.jsonl"
    assert cli(site, "audit", "export", str(export)).returncode == 0
    pub = tmp_path / "published.pem"
    pub.write_text(cli(site, "audit", "public-key").stdout)
    rc, out = verify(site, "--file", str(export), "--public-key", str(pub))
    assert rc == 13 and "no valid checkpoint" in out["reason"]


def test_resigned_with_a_key_in_the_data_directory_fails(site: Settings, tmp_path: Path) -> None:
    """The old attack: re-sign every checkpoint with <data>/ledger_signing.key; the published key now refuses it."""
    pub = tmp_path / "published.pem"
    pub.write_text(cli(site, "audit", "public-key").stdout)
    from faceledger.service.signing_key import write_new_key

    forger = write_new_key(site.data_dir / "ledger_signing.key")  # where the key used to be: now ignored
    records = rows(site)
    records[9] = edit(records[9])
    prev, last_signed = GENESIS_HASH, 0
    for i, r in enumerate(records, start=1):
        r["prev_hash"] = prev
        if r["operation"] == "SigningKey":
            r["details"] = signing_key_details(forger, None, None, None)
        elif r["operation"] == "Checkpoint":
            signed = records[i - 2]
            hashes = [x["hash"] for x in records[last_signed:i - 1]]
            r["details"] = checkpoint_details(forger, signed["seq"], signed["hash"], last_signed + 1, hashes)
            last_signed = signed["seq"]
        r["hash"] = record_hash(r)
        prev = r["hash"]
    rewrite(site, records, rehash_from=len(records) + 1)
    rc, out = verify(site)  # on the host: the operator's key (outside the data directory) is the trusted one
    assert rc == 13 and out["first_bad_seq"] == 1 and "not trusted" in out["reason"]
    export = tmp_path / "forged.jsonl"
    assert cli(site, "audit", "export", str(export)).returncode == 0
    rc, out = verify(site, "--file", str(export), "--public-key", str(pub))
    assert rc == 13 and "not trusted" in out["reason"]


def anchor(site: Settings, heads: Path) -> dict[str, Any]:
    out = cli(site, "audit", "anchor", "--out", str(heads))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert json.loads(heads.read_text().splitlines()[-1]) == doc
    return doc


def test_every_row_deleted_fails_against_a_published_head(site: Settings, tmp_path: Path) -> None:
    heads = tmp_path / "heads.jsonl"
    doc = anchor(site, heads)
    assert doc["seq"] == 51 and set(doc) >= {"hash", "signature", "key_fingerprint", "anchored_at"}
    assert verify(site, "--heads", str(heads))[0] == 0
    rewrite(site, [])
    rc, out = verify(site, "--heads", str(heads))
    assert rc == 13 and out["first_bad_seq"] == 1 and out["last_intact"] is None
    assert "emptied" in out["reason"]


def test_tail_cut_holding_two_checkpoints_fails(site: Settings, tmp_path: Path) -> None:
    heads = tmp_path / "heads.jsonl"
    head = anchor(site, heads)
    records = rows(site)
    cut = records[:41]
    assert sum(r["operation"] == "Checkpoint" for r in records[41:]) == 2
    rewrite(site, cut, rehash_from=len(cut) + 1)
    for args in (("--heads", str(heads)), ("--expect-head", f"{head['seq']}:{head['hash']}")):
        rc, out = verify(site, *args)
        assert rc == 13 and out["first_bad_seq"] == 42 and out["last_intact"]["seq"] == 41, out
        assert "cut off" in out["reason"]


def test_published_head_replaced_is_located(site: Settings, tmp_path: Path) -> None:
    """A head published at #30, then #12 rewritten and everything after re-hashed and re-checkpointed is moot:
    the forger cannot sign, and the published head no longer matches."""
    records = rows(site)
    published = f"{records[29]['seq']}:{records[29]['hash']}"
    records[11] = edit(records[11])
    rewrite(site, records, rehash_from=12)
    rc, out = verify(site, "--expect-head", published, "--checkpoint-every", "0")
    assert rc == 13 and out["first_bad_seq"] == 12 and out["checked"] == 11


def test_a_missing_checkpoint_is_a_failure(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", checkpoint_every=0,
                        ledger_key_file=str(tmp_path / "operator" / "ledger.key"))
    write_ledger(settings, 12)  # a service that never signed
    rc, out = verify(settings)
    assert rc == 13 and out["first_bad_seq"] == 1 and "required every 5 records" in out["reason"]
    rc, out = verify(settings, "--checkpoint-every", "20")  # within the grace window: fine
    assert rc == 0 and "await the next checkpoint" in out["reason"]
    rc, out = verify(settings, "--checkpoint-every", "0")  # the rule off: passes, and says it was not applied
    assert rc == 0 and "interval was NOT checked" in out["reason"], out["reason"]


def test_bad_head_argument_is_a_clear_error(site: Settings, tmp_path: Path) -> None:
    out = cli(site, "audit", "verify", "--expect-head", "12:nothex")
    assert out.returncode == 3 and out.stderr.startswith("error: InvalidParameterException")
    heads = tmp_path / "heads.jsonl"
    heads.write_text('{"seq":' + "[" * 100_000 + "\n")  # too deep for json: was a RecursionError traceback
    out = cli(site, "audit", "verify", "--heads", str(heads))
    assert out.returncode == 3 and out.stderr.startswith("error: InvalidParameterException"), out.stderr[-300:]
    out = cli(site, "audit", "verify", "--checkpoint-every", "-1")  # silently turned the interval rule off
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_key_file_inside_the_data_directory_is_refused(site: Settings) -> None:
    inside = Settings(data_dir=site.data_dir, ledger_key_file=str(site.data_dir / "k.key"))
    out = cli(inside, "audit", "public-key")
    assert out.returncode == 3 and "inside the data directory" in out.stderr and "Traceback" not in out.stderr


def test_a_key_left_in_the_data_directory_is_retired(tmp_path: Path) -> None:
    """An older faceledger kept the key in the data directory, so whoever held the data may have a copy:
    the service rotates away from it on start and deletes it; the published old key still verifies."""
    from faceledger.service.checkpoints import public_pem
    from faceledger.service.signing_key import read_key, write_new_key

    settings = Settings(data_dir=tmp_path / "data", checkpoint_every=EVERY,
                        ledger_key_file=str(tmp_path / "operator" / "ledger.key"))
    settings.data_dir.mkdir(parents=True)
    legacy = settings.data_dir / "ledger_signing.key"
    old = write_new_key(legacy)
    old_pub = tmp_path / "old.pem"
    old_pub.write_text(public_pem(old))
    write_ledger(settings, 3)
    assert not legacy.exists()
    new = read_key(Path(settings.ledger_key_file))
    assert oct(Path(settings.ledger_key_file).stat().st_mode & 0o777) == "0o600"
    assert new.private_bytes_raw() != old.private_bytes_raw()
    ops = [r["operation"] for r in rows(settings)]
    assert ops[:5] == ["SigningKey", "Checkpoint", "SigningKey", "Checkpoint", "PolicyLoaded"], ops
    assert verify(settings)[0] == 0
    rc, out = verify(settings, "--public-key", str(old_pub))  # an auditor who was given the old key
    assert rc == 0 and len(out["trusted_keys"]) == 2, out["reason"]


def test_rotation_is_recorded_and_endorsed(site: Settings, tmp_path: Path) -> None:
    old_pub = tmp_path / "old.pem"
    old_pub.write_text(cli(site, "audit", "public-key").stdout)
    new_key = tmp_path / "operator" / "ledger-2.key"
    out = cli(site, "audit", "rotate-key", "--new-key-file", str(new_key))
    assert out.returncode == 0, out.stderr
    assert new_key.is_file() and oct(new_key.stat().st_mode & 0o777) == "0o600"
    rotated = Settings(data_dir=site.data_dir, checkpoint_every=EVERY, ledger_key_file=str(new_key))
    write_ledger(rotated, 12, prefix="after")  # the service restarted with the new key signs from now on
    recs = rows(rotated)
    keys = [r for r in recs if r["operation"] == "SigningKey"]
    assert len(keys) == 2 and keys[1]["details"]["endorsed_by"] == keys[0]["details"]["key_fingerprint"]
    export = tmp_path / "ledger.jsonl"
    assert cli(rotated, "audit", "export", str(export)).returncode == 0
    # an auditor holding only the first published key follows the endorsed rotation
    rc, out = verify(rotated, "--file", str(export), "--public-key", str(old_pub))
    assert rc == 0 and len(out["trusted_keys"]) == 2, out
    # the new key alone vouches for the prefix its checkpoints sign, and with it the old key's record
    new_pub = tmp_path / "new.pem"
    new_pub.write_text(cli(rotated, "audit", "public-key").stdout)
    assert verify(rotated, "--file", str(export), "--public-key", str(new_pub))[0] == 0
    assert verify(rotated)[0] == 0  # on the host, with the configured (new) key
    both = tmp_path / "history.pem"
    both.write_text(old_pub.read_text() + new_pub.read_text())
    assert verify(rotated, "--file", str(export), "--public-key", str(both))[0] == 0
    assert cli(rotated, "audit", "anchor").returncode == 0


@pytest.mark.parametrize("rename", [False, True], ids=["old-key-signs-on", "old-key-named-again"])
def test_a_retired_key_cannot_extend_the_ledger(site: Settings, tmp_path: Path, rename: bool) -> None:
    """After a rotation, whoever kept (or leaked) the old key signs forged records at the tail: refused,
    even when the forger names the old key again in a SigningKey record of their own."""
    from faceledger.service.signing_key import read_key

    old_key = read_key(Path(site.ledger_key_file))
    old_pub = tmp_path / "old.pem"
    old_pub.write_text(cli(site, "audit", "public-key").stdout)
    new_key = tmp_path / "operator" / "ledger-2.key"
    assert cli(site, "audit", "rotate-key", "--new-key-file", str(new_key)).returncode == 0
    rotated = Settings(data_dir=site.data_dir, checkpoint_every=EVERY, ledger_key_file=str(new_key))
    write_ledger(rotated, 6, prefix="after")
    new_pub = tmp_path / "new.pem"
    new_pub.write_text(cli(rotated, "audit", "public-key").stdout)
    records = rows(rotated)
    honest = len(records)
    if rename:
        records.append({**records[0], "seq": len(records) + 1,
                        "details": signing_key_details(old_key, None, None, None)})
    last_signed = max(r["seq"] for r in records if r["operation"] == "Checkpoint") - 1
    for _ in range(2 * EVERY):
        records.append({**records[-1], "seq": len(records) + 1, "operation": "CreateCollection",
                        "details": {"request_id": "forged"}})
        if records[-1]["seq"] - last_signed >= EVERY:
            prev_hash = records[-2]["hash"]
            records[-1] = {**records[-1], "prev_hash": prev_hash}
            records[-1]["hash"] = record_hash(records[-1])
            hashes = [r["hash"] for r in records[last_signed:]]
            records.append({**records[-1], "seq": len(records) + 1, "operation": "Checkpoint",
                            "details": checkpoint_details(old_key, records[-1]["seq"], records[-1]["hash"],
                                                          last_signed + 1, hashes)})
            last_signed = records[-2]["seq"]
        prev = records[-2]["hash"]
        records[-1] = {**records[-1], "prev_hash": prev}
        records[-1]["hash"] = record_hash(records[-1])
    rewrite(rotated, records, rehash_from=len(records) + 1)
    history = tmp_path / "history.pem"
    history.write_text(old_pub.read_text() + new_pub.read_text())
    for args in ((), ("--public-key", str(history))):
        rc, out = verify(rotated, *args)
        # the honest tail after the last genuine checkpoint is unsigned, so the report starts there
        assert rc == 13 and honest - EVERY < out["first_bad_seq"] <= honest + 1, out["reason"]
        assert "outside the period" in out["reason"] or "not trusted" in out["reason"]


def test_a_record_replaced_by_a_self_consistent_one_is_settled_by_the_checkpoint(site: Settings) -> None:
    """Record 13 swapped for a self-consistent one from elsewhere (its prev_hash is not 12's hash): the
    chain alone cannot tell whether 12 or 13 changed (it names 12); the checkpoint listing 12's hash can."""
    records = rows(site)
    records[12] = {**edit(records[12]), "prev_hash": "f" * 64}
    records[12]["hash"] = record_hash(records[12])
    from faceledger.store.ledger import verify_chain

    assert verify_chain(records).first_bad_seq == 12
    rewrite(site, records, rehash_from=len(records) + 1)
    rc, out = verify(site, "--checkpoint-every", "0")
    assert rc == 13 and (out["first_bad_seq"], out["checked"]) == (13, 12), out["reason"]


def append_forged(records: list[dict[str, Any]], operation: str, details: dict[str, Any],
                  **fields: Any) -> dict[str, Any]:
    """Append one record at the tail, chained and hashed as a forger with the file would."""
    last = records[-1]
    r = {"seq": last["seq"] + 1, "at": last["at"] + 1, "principal": None, "operation": operation,
         "collection_id": None, "details": details, "prev_hash": last["hash"], **fields}
    r["hash"] = record_hash(r)
    records.append(r)
    return r


def test_a_retired_key_cannot_endorse_a_key_of_the_forgers(site: Settings, tmp_path: Path) -> None:
    """Whoever kept the old key (a key an older faceledger left in the data directory, say) has it endorse
    a key of their own after the honest rotation, then signs forged records with that: refused, whichever
    keys the auditor holds, even with a head published after the rotation."""
    from faceledger.service.checkpoints import fingerprint
    from faceledger.service.signing_key import read_key, write_new_key

    old_key = read_key(Path(site.ledger_key_file))
    old_pub = tmp_path / "old.pem"
    old_pub.write_text(cli(site, "audit", "public-key").stdout)
    new_key = tmp_path / "operator" / "ledger-2.key"
    assert cli(site, "audit", "rotate-key", "--new-key-file", str(new_key)).returncode == 0
    rotated = Settings(data_dir=site.data_dir, checkpoint_every=EVERY, ledger_key_file=str(new_key))
    write_ledger(rotated, 3, prefix="after")
    new_pub = tmp_path / "new.pem"
    new_pub.write_text(cli(rotated, "audit", "public-key").stdout)
    heads = tmp_path / "heads.jsonl"
    anchor(rotated, heads)
    records = rows(rotated)
    honest = len(records)
    forger = write_new_key(tmp_path / "forger.key")
    head = records[-1]
    append_forged(records, "SigningKey", signing_key_details(forger, old_key, fingerprint(old_key), head))
    last_signed = max(r["seq"] for r in records if r["operation"] == "Checkpoint") - 1
    for i in range(2 * EVERY):
        if records[-1]["seq"] - last_signed >= EVERY or i == 0:
            signed = records[-1]
            append_forged(records, "Checkpoint", checkpoint_details(
                forger, signed["seq"], signed["hash"], last_signed + 1,
                [r["hash"] for r in records[last_signed:]]))
            last_signed = signed["seq"]
        append_forged(records, "CreateCollection", {"request_id": "forged"})
    rewrite(rotated, records, rehash_from=len(records) + 1)
    history = tmp_path / "history.pem"
    history.write_text(old_pub.read_text() + new_pub.read_text())
    for keys in ((), ("--public-key", str(new_pub)), ("--public-key", str(old_pub)),
                 ("--public-key", str(history))):
        rc, out = verify(rotated, "--heads", str(heads), *keys)
        assert rc == 13 and out["first_bad_seq"] <= honest + 1, (keys, out["reason"])
        assert "not trusted" in out["reason"], out["reason"]


def test_copied_checkpoints_do_not_stretch_the_interval(site: Settings, tmp_path: Path) -> None:
    """A genuine checkpoint copied to the tail any number of times, each copy carrying unsigned fields
    (principal, collection, a note): they are records the service never wrote, and no checkpoint signs them."""
    heads = tmp_path / "heads.jsonl"
    anchor(site, heads)
    records = rows(site)
    honest = len(records)
    genuine = [r for r in records if r["operation"] == "Checkpoint"][-1]
    for i in range(3 * EVERY):
        append_forged(records, "Checkpoint", {**genuine["details"], "note": f"approved by the board ({i})"},
                      principal=ADMIN.access_key_id, collection_id="suspects")
    rewrite(site, records, rehash_from=len(records) + 1)
    rc, out = verify(site, "--heads", str(heads))
    assert rc == 13 and out["first_bad_seq"] <= honest + 1, out["reason"]
    assert "no valid checkpoint signs" in out["reason"]


def test_a_repeated_seq_is_reported_where_it_is(site: Settings) -> None:
    """Records after the first broken one have no meaningful position: the interval rule must not report
    a 'missing checkpoint' before the record that is actually out of place."""
    from faceledger.service.audit_trail import trusted_keys
    from faceledger.service.verification import LedgerVerifier

    records = rows(site)
    verifier = LedgerVerifier(trusted_keys([], site), EVERY)
    for r in [*records[:3], records[2], *records[3:]]:  # seq 3 twice (a table without its primary key)
        verifier.add(r)
    verdict = verifier.finish()
    assert not verdict.ok and (verdict.first_bad_seq, verdict.checked) == (4, 3), verdict.reason


def test_unsigned_fields_of_a_version_1_checkpoint_are_not_read(site: Settings) -> None:
    """A version-1 checkpoint (as faceledger wrote before record_hashes) signs only seq and hash; a
    `covers_from` added to it is unsigned, and made verify die with a ValueError traceback."""
    import base64

    from faceledger.service.checkpoints import fingerprint, head_message
    from faceledger.service.signing_key import read_key

    key = read_key(Path(site.ledger_key_file))
    records = rows(site)
    head = records[-1]
    append_forged(records, "Checkpoint", {
        "signed_seq": head["seq"], "signed_hash": head["hash"], "key_fingerprint": fingerprint(key),
        "signature": base64.b64encode(key.sign(head_message(head["seq"], head["hash"]))).decode(),
        "covers_from": "x", "record_hashes_note": []})
    rewrite(site, records, rehash_from=len(records) + 1)
    rc, out = verify(site)
    assert rc == 0 and out["ok"] and out["last_signed_seq"] == head["seq"], out["reason"]


def test_a_published_anchor_cannot_be_passed_off_as_a_checkpoint(site: Settings, tmp_path: Path) -> None:
    """Anchors are handed out (and may be published): whoever sees one copies its signature into a
    Checkpoint record after the head it names, which would restart the interval for forged records."""
    heads = tmp_path / "heads.jsonl"
    doc = anchor(site, heads)
    records = rows(site)
    assert records[-1]["seq"] == doc["seq"]
    append_forged(records, "Checkpoint", {k: doc[k] for k in ("key_fingerprint", "signature")}
                  | {"signed_seq": doc["seq"], "signed_hash": doc["hash"]})
    for _ in range(EVERY - 1):  # the checkpoint record counts towards the interval it starts
        append_forged(records, "CreateCollection", {"request_id": "forged"})
    rewrite(site, records, rehash_from=len(records) + 1)
    rc, out = verify(site, "--heads", str(heads))
    assert rc == 13 and "does not verify" in out["reason"], out["reason"]


@pytest.mark.parametrize("operation", ["Checkpoint", "SigningKey"])
def test_many_copied_records_cost_linear_time(site: Settings, operation: str) -> None:
    """20,000 copies of a genuine checkpoint (or of the SigningKey record, with copied checkpoints) at the
    tail: every copy was compared with every other (63 s and 19 s before; a million copies: days)."""
    import time

    from faceledger.service.audit_trail import trusted_keys
    from faceledger.service.verification import LedgerVerifier

    records = rows(site)
    honest = len(records)
    genuine = [r for r in records if r["operation"] == operation][-1]
    checkpoint = [r for r in records if r["operation"] == "Checkpoint"][-1]
    for i in range(20_000):
        copy = genuine if operation == "Checkpoint" or i % 2 else checkpoint
        append_forged(records, copy["operation"], copy["details"])
    started = time.monotonic()
    verifier = LedgerVerifier(trusted_keys([], site), EVERY)
    for r in records:
        verifier.add(r)
    verdict = verifier.finish()
    assert not verdict.ok and verdict.first_bad_seq <= honest + 1, verdict.reason
    assert time.monotonic() - started < 15


def test_nesting_too_deep_to_decode_is_a_bad_record_not_a_traceback(site: Settings, tmp_path: Path) -> None:
    """details 200,000 arrays deep (in the catalog or an export line): json gives up with RecursionError,
    which verify, show and export let through as a traceback."""
    deep = "[" * 200_000 + "]" * 200_000
    export = tmp_path / "ledger.jsonl"
    assert cli(site, "audit", "export", str(export)).returncode == 0
    lines = export.read_text().splitlines()
    lines[4] = deep
    export.write_text("\n".join(lines) + "\n")
    rc, out = verify(site, "--file", str(export))
    assert rc == 13 and out["first_bad_seq"] == 5 and "not a JSON ledger record" in out["reason"], out
    conn = sqlite3.connect(site.data_dir / "catalog.db")
    conn.execute("DROP TRIGGER ledger_no_update")
    conn.execute("UPDATE ledger SET details = ? WHERE seq = 5", (deep,))
    conn.commit()
    conn.close()
    rc, out = verify(site)
    assert rc == 13 and out["first_bad_seq"] == 5 and "edited" in out["reason"], out
    for args in (("audit", "show", "--json"), ("audit", "export", str(tmp_path / "again.jsonl"))):
        done = cli(site, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-300:]
