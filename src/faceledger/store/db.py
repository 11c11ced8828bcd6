"""SQLite plumbing for the catalog: connections, transactions, migrations.

One connection per thread (SQLite connections must not be shared across
threads mid-statement), all opened with WAL, ``synchronous=FULL``, foreign
keys and ``secure_delete`` on. Writes go through :class:`Transaction` (``BEGIN IMMEDIATE`` …
``COMMIT``; any exception rolls back). This module knows no table but the
schema-version one; it must not hold business rules.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceledger.errors import FaceledgerError, StorageFullError
from faceledger.store.schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 30_000


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


class Transaction:
    """An open write transaction on one thread's connection.

    Store functions take it as their first argument; it is only valid inside
    the ``with catalog.transaction()`` block that made it.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._thread = threading.get_ident()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("transaction is closed: use it inside its `with` block")
        if threading.get_ident() != self._thread:
            raise RuntimeError("a transaction must be used on the thread that opened it")
        return self._conn

    @property
    def active(self) -> bool:
        return self._conn is not None

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def _close(self) -> None:
        self._conn = None


class Database:
    """Thread-local SQLite connections to one file, plus transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # Weak: a connection is closed when its thread ends; close() closes the rest.
        self._all: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        migrate(self.connection())

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("catalog is closed")
        try:
            conn = _connect(self.path)
        except sqlite3.Error as exc:
            _raise_if_full(exc, self.path)
            raise
        self._local.conn = conn
        with self._lock:
            self._all.add(conn)
        return conn

    def ping(self) -> None:
        """A statement on this thread's connection (the file is there and readable)."""
        self.connection().execute("SELECT 1").fetchone()

    def in_transaction(self) -> bool:
        return getattr(self._local, "tx", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self.in_transaction():
            raise RuntimeError("a transaction is already open on this thread")
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        tx = Transaction(conn)
        self._local.tx = tx
        try:
            yield tx
        except BaseException as exc:
            conn.rollback()
            _raise_if_full(exc, self.path)
            raise
        else:
            try:
                conn.commit()
            except BaseException as exc:
                conn.rollback()
                _raise_if_full(exc, self.path)
                raise
        finally:
            tx._close()
            self._local.tx = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all = list(self._all), weakref.WeakSet()
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _raise_if_full(exc: BaseException, path: Path) -> None:
    """A full disk becomes one clear, retryable error; the caller has rolled back already."""
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        raise StorageFullError(
            f"The disk holding {path.parent} is full (SQLite: {exc}); nothing was written. "
            "Free space there (or grow the volume), then retry."
        ) from exc


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, the module never does.
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False,
        factory=_Connection,
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise FaceledgerError(f"could not put {path} in WAL mode (got {mode}); is the disk local?")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # deleted rows (withdrawn faces) are overwritten with zeros, not left in free pages
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def split_script(script: str) -> list[str]:
    """Split DDL into complete statements (trigger bodies contain ';')."""
    statements: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                statements.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement at end of script: {buf!r}")
    return statements


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise FaceledgerError(
                f"catalog schema version {current} is newer than this faceledger "
                f"understands ({SCHEMA_VERSION}); upgrade faceledger"
            )
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            for statement in split_script(script):
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                        raise
                    raise FaceledgerError(
                        f"cannot upgrade the catalog from schema version {current} to {version} ({exc}): "
                        "its tables do not match the version it records (a data directory written by a "
                        "development build of faceledger?); nothing was changed"
                    ) from exc
            conn.execute(
                "INSERT INTO schema_version(version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
        conn.commit()
    except BaseException as exc:
        conn.rollback()
        _raise_if_full(exc, Path(conn.execute("PRAGMA database_list").fetchone()[2]))
        raise
    return SCHEMA_VERSION


def chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """Slices small enough for SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
