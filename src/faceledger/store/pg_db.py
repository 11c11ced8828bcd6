"""PostgreSQL plumbing for the catalog: a connection pool, transactions, migrations (cf. store/db.py).

:class:`PgDatabase` gives the :class:`~faceledger.store.catalog.Catalog` facade
what :class:`~faceledger.store.db.Database` gives it over SQLite: ``connection()``
for reads, ``transaction()`` for writes (``BEGIN`` … ``COMMIT``, any exception
rolls back), ``close()``. The table modules run unchanged on it because a
:class:`PgSession` looks like an ``sqlite3.Connection`` to them: ``execute`` /
``executemany`` with ``?`` placeholders (translated to psycopg's ``%s`` here, at
the one boundary, never by rewriting statements) and rows readable by name and by
position. The few statements that differ between the engines are chosen in the
table modules (see :mod:`faceledger.store.dialect`).

Failures of the database itself (PostgreSQL down, restarted, unreachable, the pool
exhausted) become :class:`~faceledger.errors.StoreUnavailableError` (503, which the
AWS SDKs retry); the pool checks a connection before lending it, so the service
reconnects by itself once PostgreSQL is back. This module knows no table but
``schema_version``; it holds no business rule.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from faceledger.errors import FaceledgerError, InvalidParameterError, StoreUnavailableError
from faceledger.store.pg_schema import MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION

DIALECT = "postgresql"
# The server went away (shut down, restarted, unreachable) or the pool could lend no connection in time.
_LOST = (psycopg.OperationalError, psycopg.InterfaceError)
POOL_MAX = 16
POOL_TIMEOUT_S = 5.0  # a request waits this long for a connection before it is refused (503)
CONNECT_TIMEOUT_S = 5
PING_TIMEOUT_S = 2.0  # GET /ready: a readiness probe answers before the probe itself times out


def _secrets(url: str) -> list[str]:
    """The password(s) in ``url``, as written and decoded: from the user-info part and the query string."""
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "password" and v]
    found += [raw.split("=", 1)[1] for raw in parts.query.split("&") if raw.startswith("password=")]
    secrets = {s for f in found for s in (f, unquote(f)) if s}
    return sorted(secrets, key=len, reverse=True)  # longest first: a decoded form may be part of the raw one


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs): the user-info one and a ``password=`` query one."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join("password=***" if q.startswith("password=") else q for q in parts.query.split("&")) \
        if parts.query else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, url: str) -> str:
    """``text`` (a libpq message may quote part of the URL) with ``url``'s password replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


class PgRow(tuple):  # type: ignore[type-arg]
    """A row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description] if cursor.description else []
    index = {n: i for i, n in enumerate(names)}

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(values)
        row._index = index
        return row

    return make


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def unavailable(exc: BaseException, url: str) -> StoreUnavailableError:
    first = scrub(str(exc).strip().splitlines()[0], url) if str(exc).strip() else type(exc).__name__
    return StoreUnavailableError(
        f"The PostgreSQL store at {redact(url)} is unavailable ({first}); nothing was written. Retry: the "
        "service reconnects by itself once PostgreSQL answers again.")


def refused_value(exc: psycopg.DataError) -> InvalidParameterError:
    """A value PostgreSQL cannot hold (a NUL in text, a number out of range): the caller's input, a 400."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return InvalidParameterError(f"The store cannot hold a value of this request ({first}); nothing was written.")


class _Result:
    """A fetched result that outlives the connection it was read on (reads outside a transaction)."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class PgSession:
    """One pooled connection seen through the sqlite3.Connection calls the table modules make."""

    dialect = DIALECT

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        self._conn = conn
        self._url = url

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection itself (``%s`` placeholders, composed SQL): for store/pg_vectors.py's DDL."""
        return self._conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        cur = self._conn.cursor(row_factory=row_factory)
        try:
            # binary results: a vector arrives as packed float4s, not text to parse (10x at start-up load)
            cur.execute(translate(sql), tuple(params) if params else None, binary=True)
        except _LOST as exc:
            raise unavailable(exc, self._url) from exc
        except psycopg.DataError as exc:
            raise refused_value(exc) from exc
        return cur

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> Any:
        cur = self._conn.cursor(row_factory=row_factory)
        params = [tuple(p) for p in seq_of_params]
        if not params:
            return cur
        try:
            cur.executemany(translate(sql), params)
        except _LOST as exc:
            raise unavailable(exc, self._url) from exc
        except psycopg.DataError as exc:
            raise refused_value(exc) from exc
        return cur


class _AutocommitReader:
    """Reads outside a transaction: each statement borrows a pooled connection and returns its rows."""

    dialect = DIALECT

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def execute(self, sql: str, params: Any = ()) -> _Result:
        with self._db.borrow() as conn:
            cur = PgSession(conn, self._db.url).execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            return _Result(rows, cur.rowcount)

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> _Result:
        raise RuntimeError("writes go through catalog.transaction()")


class PgTransaction:
    """An open write transaction on one pooled connection (cf. store/db.py's Transaction)."""

    def __init__(self, session: PgSession) -> None:
        self._session: PgSession | None = session
        self._thread = threading.get_ident()

    @property
    def conn(self) -> PgSession:
        if self._session is None:
            raise RuntimeError("transaction is closed: use it inside its `with` block")
        if threading.get_ident() != self._thread:
            raise RuntimeError("a transaction must be used on the thread that opened it")
        return self._session

    @property
    def active(self) -> bool:
        return self._session is not None

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params)

    def _close(self) -> None:
        self._session = None


def _configure(conn: psycopg.Connection[Any]) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)  # numpy arrays in and out of `vector` columns
    conn.commit()


class PgDatabase:
    """A pool of connections to one PostgreSQL database, plus transactions. Thread-safe."""

    def __init__(self, url: str, *, max_size: int = POOL_MAX) -> None:
        self.url = url
        self.path = redact(url)  # what messages name (the SQLite Database's file path)
        self._local = threading.local()
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
                migrate(conn)
        except _LOST as exc:
            raise unavailable(exc, url) from exc
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_size, timeout=POOL_TIMEOUT_S, open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S}, configure=_configure,
            check=ConnectionPool.check_connection, reconnect_timeout=24 * 3600,
        )
        self._pool.open(wait=False)

    @property
    def pool(self) -> ConnectionPool:
        """The pool itself (store/pg_vectors.py reads through it: one pool per process)."""
        return self._pool

    @contextmanager
    def borrow(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, checked alive (autocommit off); PostgreSQL down -> StoreUnavailableError."""
        try:
            cm = self._pool.connection()
            conn = cm.__enter__()
        except _LOST as exc:
            raise unavailable(exc, self.url) from exc
        try:
            yield conn
        except BaseException as exc:
            cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            try:
                cm.__exit__(None, None, None)
            except _LOST as exc:
                raise unavailable(exc, self.url) from exc

    def ping(self, timeout: float = PING_TIMEOUT_S) -> None:
        """``SELECT 1`` on a pooled connection within ``timeout``; StoreUnavailableError if none answers."""
        try:
            with self._pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except _LOST as exc:
            raise unavailable(exc, self.url) from exc

    def connection(self) -> Any:
        """The open transaction's session on this thread (reads see its writes), else an autocommit reader."""
        tx: PgTransaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.conn
        return _AutocommitReader(self)

    def in_transaction(self) -> bool:
        return getattr(self._local, "tx", None) is not None

    @contextmanager
    def transaction(self) -> Iterator[PgTransaction]:
        if self.in_transaction():
            raise RuntimeError("a transaction is already open on this thread")
        with self.borrow() as conn:
            tx = PgTransaction(PgSession(conn, self.url))
            self._local.tx = tx
            try:
                try:
                    yield tx
                except BaseException:
                    _rollback(conn)
                    raise
                try:
                    conn.commit()
                except _LOST as exc:
                    _rollback(conn)
                    raise unavailable(exc, self.url) from exc
                except BaseException:
                    _rollback(conn)
                    raise
            finally:
                tx._close()
                self._local.tx = None

    def close(self) -> None:
        self._pool.close()


def _rollback(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.rollback()
    except psycopg.Error:
        pass  # a lost connection: the server rolled back already, and the pool discards it


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION` (one process at a time); returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                     " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise FaceledgerError(
                f"PostgreSQL catalog schema version {current} is newer than this faceledger "
                f"understands ({SCHEMA_VERSION}); upgrade faceledger")
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            try:
                conn.execute(script.encode())  # no parameters: the script may hold several statements
            except psycopg.errors.DuplicateObject as exc:
                raise FaceledgerError(
                    f"cannot upgrade the PostgreSQL catalog from schema version {current} to {version} ({exc}): "
                    "the database holds tables this version did not create; use an empty database"
                ) from exc
            conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (%s, %s)",
                         (version, time.time()))
    return SCHEMA_VERSION


def drop_database_objects(url: str) -> None:
    """Empty the database (tests and `store migrate --fresh`)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
