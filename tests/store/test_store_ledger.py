from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from faceledger.store import Catalog, Ledger
from faceledger.store.ledger import GENESIS_HASH, canonical, verify_file


def _fill(catalog: Catalog, ledger: Ledger, n: int) -> None:
    with catalog.transaction() as tx:  # one commit: fsync per record is slow in tests
        for i in range(n):
            ledger.append(tx, operation="SearchFacesByImage" if i % 2 else "IndexFaces",
                          principal=f"AKIA{i % 3}", collection_id=f"c{i % 2}",
                          details={"i": i, "purpose": "case", "nested": {"b": 1, "a": [1.5, None]}},
                          at=1000.0 + i)


def _raw(catalog: Catalog) -> sqlite3.Connection:
    """An attacker's connection to the file: drops the append-only triggers."""
    raw = sqlite3.connect(catalog.path)
    raw.execute("DROP TRIGGER ledger_no_update")
    raw.execute("DROP TRIGGER ledger_no_delete")
    return raw


def test_append_builds_a_chain(catalog: Catalog, ledger: Ledger) -> None:
    with catalog.transaction() as tx:
        first = ledger.append(tx, operation="CreateCollection", principal="AKIA1",
                              collection_id="c", details={"b": 2, "a": 1}, at=5)
        second = ledger.append(tx, operation="DeleteCollection", principal=None,
                               collection_id=None, details={})
    assert first["seq"] == 1 and second["seq"] == 2
    assert first["prev_hash"] == GENESIS_HASH and second["prev_hash"] == first["hash"]
    assert first["at"] == 5.0 and isinstance(first["at"], float)
    body = {k: v for k, v in first.items() if k != "hash"}
    assert first["hash"] == hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    stored = catalog.connection().execute("SELECT details FROM ledger WHERE seq=1").fetchone()[0]
    assert stored == '{"a":1,"b":2}'
    assert ledger.head() == second
    assert ledger.records() == [first, second]


def test_records_filters(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 12)
    assert [r["seq"] for r in ledger.records(after_seq=3, limit=4)] == [4, 5, 6, 7]
    assert all(r["operation"] == "IndexFaces" for r in ledger.records(operation="IndexFaces"))
    assert [r["seq"] for r in ledger.records(principal="AKIA0")] == [1, 4, 7, 10]
    assert [r["seq"] for r in ledger.records(collection_id="c1", principal="AKIA1")] == [2, 8]
    assert [r["seq"] for r in ledger.records(since=1003.0, until=1006.0)] == [4, 5, 6]


def test_verify_intact_and_export(catalog: Catalog, ledger: Ledger, tmp_path: Path) -> None:
    assert ledger.verify().ok and ledger.verify().checked == 0
    _fill(catalog, ledger, 2500)  # more than one page
    result = ledger.verify()
    assert (result.ok, result.checked, result.first_bad_seq) == (True, 2500, None)
    head = ledger.head()
    assert head is not None and result.head_hash == head["hash"]
    path = tmp_path / "ledger.jsonl"
    assert ledger.export(path) == 2500
    assert verify_file(path).ok
    assert ledger.verify_file(path, expected_head_hash=head["hash"]).ok
    line = path.read_text().splitlines()[0]
    assert line == canonical(json.loads(line))


def test_append_only_triggers(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 2)
    conn = catalog.connection()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE ledger SET principal = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM ledger WHERE seq = 2")
    assert ledger.verify().ok


@pytest.mark.parametrize("column,value", [
    ("details", '{"i":3,"purpose":"other"}'),
    ("principal", "AKIAEVIL"),
    ("at", 1.0),
    ("operation", "DetectFaces"),
    ("details", "not json"),
])
def test_edit_is_detected(catalog: Catalog, ledger: Ledger, column: str, value: object) -> None:
    _fill(catalog, ledger, 6)
    raw = _raw(catalog)
    raw.execute(f"UPDATE ledger SET {column} = ? WHERE seq = 4", (value,))
    raw.commit()
    result = ledger.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "edited" in result.reason


def test_edit_with_recomputed_hash_is_named_at_the_edited_record(catalog: Catalog, ledger: Ledger) -> None:
    """Issue 6: the report names record 4 (it was 5), and every record before it is intact."""
    _fill(catalog, ledger, 6)
    record = ledger.records(after_seq=3, limit=1)[0]
    record["details"] = {"forged": True}
    from faceledger.store.ledger import record_hash
    record["hash"] = record_hash(record)
    raw = _raw(catalog)
    raw.execute("UPDATE ledger SET details = ?, hash = ? WHERE seq = 4",
                (canonical(record["details"]), record["hash"]))
    raw.commit()
    result = ledger.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "prev_hash" in result.reason and "record 4 was edited" in result.reason
    assert ledger.verify(ledger.records(limit=3)).ok


def test_deletion_is_detected(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 6)
    raw = _raw(catalog)
    raw.execute("DELETE FROM ledger WHERE seq = 3")
    raw.commit()
    result = ledger.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "missing" in result.reason


def test_deleted_first_record_is_detected(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 3)
    raw = _raw(catalog)
    raw.execute("DELETE FROM ledger WHERE seq = 1")
    raw.commit()
    assert ledger.verify().first_bad_seq == 1


def test_deletion_and_renumbering_is_detected(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 6)
    raw = _raw(catalog)
    raw.execute("DELETE FROM ledger WHERE seq = 3")
    raw.execute("UPDATE ledger SET seq = seq - 1 WHERE seq > 3")
    raw.commit()
    result = ledger.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "edited" in result.reason  # the renumbered record's own hash no longer fits


def test_reorder_in_database_is_detected(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 6)
    raw = _raw(catalog)
    # Swap the contents of seq 3 and 4, keeping each seq slot in place.
    raw.execute("UPDATE ledger SET seq = -3 WHERE seq = 3")
    raw.execute("UPDATE ledger SET seq = 3 WHERE seq = 4")
    raw.execute("UPDATE ledger SET seq = 4 WHERE seq = -3")
    raw.commit()
    result = ledger.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_reorder_delete_and_edit_in_export(catalog: Catalog, ledger: Ledger, tmp_path: Path) -> None:
    _fill(catalog, ledger, 6)
    path = tmp_path / "ledger.jsonl"
    ledger.export(path)
    lines = path.read_text().splitlines()

    def check(new_lines: list[str]) -> tuple[bool, int | None]:
        altered = tmp_path / "altered.jsonl"
        altered.write_text("\n".join(new_lines) + "\n")
        result = verify_file(altered)
        return result.ok, result.first_bad_seq

    assert check(lines) == (True, None)
    assert check(lines[:2] + [lines[3], lines[2]] + lines[4:]) == (False, 3)
    assert check(lines[:4] + lines[5:]) == (False, 5)
    edited = json.loads(lines[1])
    edited["details"]["i"] = 99
    assert check([lines[0], canonical(edited)] + lines[2:]) == (False, 2)
    assert check(lines[:2] + ["{truncated"] + lines[3:]) == (False, 3)


def test_truncation_needs_an_expected_head(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 5)
    head = ledger.head()
    assert head is not None
    raw = _raw(catalog)
    raw.execute("DELETE FROM ledger WHERE seq = 5")
    raw.commit()
    assert ledger.verify().ok  # a bare chain cannot see a cut-off tail
    result = ledger.verify(expected_head_hash=head["hash"])
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)


def test_verify_given_records(catalog: Catalog, ledger: Ledger) -> None:
    _fill(catalog, ledger, 4)
    records = ledger.records()
    assert ledger.verify(records).ok
    assert ledger.verify(list(reversed(records))).first_bad_seq == 1
    assert ledger.verify(records[1:]).first_bad_seq == 1
