"""Which store a data directory uses (``FACELEDGER_STORE``), opened and checked.

``sqlite:///PATH`` (the default: ``<data_dir>/catalog.db``) is the embedded
catalog; ``postgresql://...`` (or ``postgres://``) the PostgreSQL one. Either way
the data directory keeps the master key, the page-token key and video files; the
catalog, keys (sealed), consents, jobs, idempotency records, reviews, thumbnails,
state and the ledger live in the store. Entry points (service, CLI) open the
catalog here, never ``Catalog.open`` directly, so the one setting decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceledger.errors import InvalidParameterError
from faceledger.store.catalog import CATALOG_FILE, Catalog

SQLITE_PREFIX = "sqlite:///"
PG_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StoreUrl:
    kind: str  # "sqlite" | "postgresql"
    target: str  # the SQLite file, or the libpq URL

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"

    def __str__(self) -> str:
        if self.is_postgres:
            from faceledger.store.pg_db import redact

            return redact(self.target)
        return SQLITE_PREFIX + self.target


def parse(url: str, data_dir: Path | str | None = None) -> StoreUrl:
    """``url`` as a store; empty means the SQLite catalog in ``data_dir``."""
    url = (url or "").strip()
    if not url:
        if data_dir is None:
            raise InvalidParameterError("No store given: pass sqlite:///PATH or postgresql://...")
        return StoreUrl("sqlite", str(Path(data_dir) / CATALOG_FILE))
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) - 1:]  # keep the leading / of the absolute path
        if path in ("", "/"):
            raise InvalidParameterError(f"FACELEDGER_STORE={url!r}: sqlite:/// needs the catalog file's path.")
        return StoreUrl("sqlite", str(Path(path).expanduser()))
    if url.startswith(PG_PREFIXES):
        return StoreUrl("postgresql", url)
    raise InvalidParameterError(
        f"FACELEDGER_STORE={url[:60]!r} is neither sqlite:///PATH nor postgresql://...: say which store to use.")


def store_of(settings: Any) -> StoreUrl:
    return parse(getattr(settings, "store", ""), settings.data_dir)


def open_catalog(settings: Any) -> Catalog:
    """The catalog ``settings`` name (``FACELEDGER_STORE``), master key from the data directory."""
    return open_url(store_of(settings), settings.data_dir)


def open_url(store: StoreUrl, data_dir: Path | str) -> Catalog:
    if store.is_postgres:
        return Catalog.open_postgres(data_dir, store.target)
    return Catalog.open(data_dir, store.target)


def refuse_damaged(settings: Any) -> None:
    """The startup integrity check of whichever store ``settings`` name (FACELEDGER_STARTUP_CHECK)."""
    store = store_of(settings)
    if store.is_postgres:
        from faceledger.store import pg_integrity

        pg_integrity.refuse_damaged(store.target, settings.startup_check)
        return
    from faceledger.store import integrity

    integrity.refuse_damaged(Path(store.target), settings.startup_check)


def problems(store: StoreUrl, mode: str = "full") -> list[str]:
    """What the store's own integrity check finds (empty: sound)."""
    if store.is_postgres:
        from faceledger.store import pg_integrity

        return pg_integrity.problems(store.target, mode)
    from faceledger.store import integrity

    return integrity.problems(Path(store.target), mode)
