"""Is the catalog file sound? SQLite's own integrity check, run before the catalog is served or verified.

A flipped byte in a b-tree page can make reads fail half-way, or (in an index)
return wrong rows without any error; the ledger's hash chain only sees the
ledger table. ``PRAGMA quick_check`` walks every page of every table and
index (O(N)); ``PRAGMA integrity_check`` also checks each index against its
table (slower, see docs/benchmarks.md). This module opens its own connection
and never writes; it knows no table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from faceledger.errors import IntegrityFailedError, InvalidParameterError

MODES = ("quick", "full", "off")
_PRAGMA = {"quick": "PRAGMA quick_check", "full": "PRAGMA integrity_check"}
MAX_PROBLEMS = 20


def problems(path: Path, mode: str = "full") -> list[str]:
    """What SQLite finds wrong with ``path`` (empty: sound, or absent, or ``mode`` is off)."""
    if mode not in MODES:
        raise InvalidParameterError(f"FACELEDGER_STARTUP_CHECK={mode!r}: choose one of {', '.join(MODES)}.")
    if mode == "off" or not Path(path).is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        rows = conn.execute(f"{_PRAGMA[mode]}({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    found = [" ".join(str(r[0]).split()) for r in rows]  # SQLite's messages span lines
    return [] if found == ["ok"] else found


def refuse_damaged(path: Path, mode: str) -> None:
    """Raise (exit 13) when the catalog fails its check: a damaged catalog is not served."""
    found = problems(path, mode)
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        raise IntegrityFailedError(
            f"{path} fails its integrity check: {found[0]}{more}. Not serving a damaged catalog: restore it "
            "from a backup; `faceledger audit verify` names the last intact ledger record.")
