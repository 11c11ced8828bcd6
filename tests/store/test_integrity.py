"""Issue 7: one flipped byte in catalog.db, on each kind of page, is caught: verify exits 13 with JSON, serve refuses.

The old flipped-byte test flipped arbitrary offsets and 2 of 4 went
unnoticed (free space inside a page is never read). Here each page is found by
its type (SQLite's dbstat table, the header's freelist pointer) and the byte
flipped is one SQLite or the ledger reads: a page header, a cell's content,
an overflow or freelist pointer.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.errors import IntegrityFailedError
from faceledger.service import Service
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.integrity import problems, refuse_damaged
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder

FACELEDGER = [sys.executable, "-m", "faceledger.cli.main"]
PAGE = 4096
EVERY = 300  # a checkpoint then lists 300 short hashes: its record spills onto overflow pages


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("integrity")
    settings = Settings(data_dir=root / "data", checkpoint_every=EVERY, ledger_key_file=str(root / "op" / "k.key"))
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    svc = Service(settings, Catalog.open(settings.data_dir), VectorIndex(), EnginePool(EngineSettings(), engine=engine))
    try:
        with svc.catalog.transaction() as tx:
            for i in range(700):
                svc.append(tx, operation="CreateCollection", principal="AKIATEST", collection_id=f"c{i}",
                           details={"request_id": f"r{i}", "tags": {"team": "x" * 40}})
    finally:
        svc.close()
    conn = sqlite3.connect(settings.data_dir / "catalog.db")
    conn.execute("CREATE TABLE scratch(x)")  # freed again below: the file keeps a freelist
    conn.executemany("INSERT INTO scratch VALUES (?)", [("y" * 1000,) for _ in range(60)])
    conn.commit()
    conn.execute("DROP TABLE scratch")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return settings


def pages(db: Path) -> dict[str, list[int]]:
    conn = sqlite3.connect(db)
    out: dict[str, list[int]] = {}
    for name, pageno, kind in conn.execute("SELECT name, pageno, pagetype FROM dbstat"):
        out.setdefault(f"{name}:{kind}", []).append(pageno)
    conn.close()
    with open(db, "rb") as fh:
        header = fh.read(100)
    out["freelist:trunk"] = [int.from_bytes(header[32:36], "big")]
    return out


def copy(pristine: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(pristine.data_dir, tmp_path / "data")
    for folder in (tmp_path / "data", *(p for p in (tmp_path / "data").rglob("*") if p.is_dir())):
        folder.chmod(0o700)  # as Service.open leaves them: else start-up warns that it tightened them
    return Settings(data_dir=tmp_path / "data", checkpoint_every=EVERY, ledger_key_file=pristine.ledger_key_file)


def flip(db: Path, offset: int, mask: int = 0xFF) -> None:
    with open(db, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ mask]))


def cli(settings: Settings, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACELEDGER_DATA_DIR": str(settings.data_dir),
           "FACELEDGER_LEDGER_KEY_FILE": settings.ledger_key_file, "FACELEDGER_CHECKPOINT_EVERY": str(EVERY)}
    return subprocess.run([*FACELEDGER, *args], capture_output=True, text=True, env=env, timeout=timeout)


def verdict(settings: Settings) -> dict[str, Any]:
    out = cli(settings, "audit", "verify", "--json")
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 13, (out.returncode, out.stdout, out.stderr)
    doc: dict[str, Any] = json.loads(out.stdout)
    assert doc["ok"] is False and "last_intact" in doc
    return doc


def test_pristine_catalog_is_sound_and_has_every_page_type(pristine: Settings) -> None:
    found = pages(pristine.data_dir / "catalog.db")
    for kind in ("ledger:internal", "ledger:leaf", "ledger:overflow", "ledger_by_operation:internal",
                 "ledger_by_operation:leaf"):
        assert found.get(kind), (kind, sorted(found))
    assert found["freelist:trunk"][0] > 0
    assert problems(pristine.data_dir / "catalog.db", "full") == []
    out = cli(pristine, "audit", "verify", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"], out.stdout


# (page kind, which page of that kind, byte within the page)
STRUCTURAL = [
    ("header", None, 0),                            # the magic string
    ("ledger:internal", None, 3),                   # cell count of a table interior page
    ("ledger:leaf", "last", 3),                     # cell count of a table leaf page
    ("ledger:overflow", None, 0),                   # the next-overflow-page pointer
    ("ledger_by_operation:internal", None, 3),      # cell count of an index interior page
    ("ledger_by_operation:leaf", None, 3),          # cell count of an index leaf page
    ("freelist:trunk", None, 0),                    # the next-trunk pointer
]


def assert_serve_refuses(settings: Settings) -> None:
    """One line on stderr, exit 13, before any model or worker is loaded."""
    served = cli(settings, "serve", "--port", "0", "--workers", "1", timeout=60)
    assert served.returncode == 13, (served.returncode, served.stderr[-2000:])
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "integrity check" in lines[0], lines


@pytest.mark.parametrize(("kind", "which", "offset"), STRUCTURAL, ids=[s[0] for s in STRUCTURAL])
def test_structural_flip_fails_verify_and_serve(pristine: Settings, tmp_path: Path, kind: str, which: str | None,
                                                offset: int) -> None:
    settings = copy(pristine, tmp_path)
    db = settings.data_dir / "catalog.db"
    if kind == "header":
        flip(db, offset)
    else:
        numbers = pages(db)[kind]
        page = numbers[-1] if which == "last" else numbers[0]
        flip(db, (page - 1) * PAGE + offset)
    assert problems(db, "quick"), "the cheaper start-up check sees structural damage too"
    doc = verdict(settings)
    assert doc["reason"] and doc["database_problems"]
    if doc["last_intact"] is not None:
        assert doc["first_bad_seq"] is None or doc["last_intact"]["seq"] == doc["first_bad_seq"] - 1
    assert_serve_refuses(settings)


@pytest.mark.parametrize(("mask", "seen_as"), [(0x01, "edited"), (0xFF, "stopped after record")],
                         ids=["still-text", "not-text"])
def test_flip_inside_a_ledger_record_is_named(pristine: Settings, tmp_path: Path, mask: int, seen_as: str) -> None:
    """Content, not structure: no integrity check sees it; the chain (or the failed read) names the record."""
    settings = copy(pristine, tmp_path)
    db = settings.data_dir / "catalog.db"
    leaf = pages(db)["ledger:leaf"][5]
    flip(db, leaf * PAGE - 30, mask)  # the end of a leaf page is its last-inserted cell's payload
    assert problems(db, "full") == []
    doc = verdict(settings)
    assert doc["first_bad_seq"] and doc["last_intact"]["seq"] == doc["first_bad_seq"] - 1, doc
    assert seen_as in doc["reason"]


def test_flip_inside_an_overflow_page_is_named(pristine: Settings, tmp_path: Path) -> None:
    settings = copy(pristine, tmp_path)
    db = settings.data_dir / "catalog.db"
    page = pages(db)["ledger:overflow"][0]
    flip(db, (page - 1) * PAGE + 200)  # inside a checkpoint's list of short hashes
    doc = verdict(settings)
    assert doc["first_bad_seq"] and doc["last_intact"]["seq"] == doc["first_bad_seq"] - 1, doc


def test_flip_inside_an_index_entry_is_caught_by_the_full_check(pristine: Settings, tmp_path: Path) -> None:
    settings = copy(pristine, tmp_path)
    db = settings.data_dir / "catalog.db"
    page = pages(db)["ledger_by_operation:leaf"][0]
    flip(db, page * PAGE - 5)  # the rowid of an index entry: the index now points at the wrong record
    doc = verdict(settings)
    assert doc["database_problems"], doc
    assert doc["last_intact"]["seq"] == doc["records"]  # the ledger table itself reads intact
    assert problems(db, "quick") == []  # why the start-up default is the full check
    with pytest.raises(IntegrityFailedError, match="integrity check"):
        refuse_damaged(db, "full")
    assert_serve_refuses(settings)


def test_other_commands_on_a_damaged_catalog_say_so_in_one_line(pristine: Settings, tmp_path: Path) -> None:
    settings = copy(pristine, tmp_path)
    flip(settings.data_dir / "catalog.db", 0)
    for args in (("audit", "show"), ("audit", "export", str(tmp_path / "out.jsonl")), ("keys", "list")):
        out = cli(settings, *args)
        assert out.returncode == 13 and "Traceback" not in out.stderr, (args, out.stderr[-1500:])
        assert out.stderr.count("\n") == 1 and "damaged" in out.stderr
