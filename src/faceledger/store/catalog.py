"""The catalog: every durable record of the embedded store, in one SQLite file.

``Catalog.open(data_dir)`` makes the directory private (0700, files 0600; see
:mod:`faceledger.store.perms`) and gives collections, faces (with their vectors in the
same row), users, idempotency records, API keys and service state. Writes
take the :class:`~faceledger.store.db.Transaction` from
``with catalog.transaction() as tx:`` and commit or roll back together, with
the ledger records appended in the same transaction. Reads made on the thread
that holds an open transaction see its uncommitted writes.

This class is a thin facade over the table modules; it must not hold service
rules (purposes, thresholds, policy) nor touch the in-memory vector index.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from faceledger.store import (
    accountability,
    changes,
    collections,
    dialect,
    faces,
    keys,
    leases,
    staging,
    state,
    thumbnails,
    users,
)
from faceledger.store.db import Database, Transaction
from faceledger.store.perms import create_private, secure_data_dir
from faceledger.store.sealing import (
    MASTER_KEY_FILE,
    Sealer,
    SealError,
    load_or_create_master_key,
)

log = logging.getLogger("faceledger.store")

CATALOG_FILE = "catalog.db"
_FINGERPRINT = "master_key_fingerprint"


class Catalog:
    """Embedded SQLite catalog of one data directory. Thread-safe."""

    def __init__(self, data_dir: Path, db: Database, sealer: Sealer) -> None:
        self.data_dir = data_dir
        self._db = db
        self._sealer = sealer

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | Path, catalog_file: str | Path | None = None) -> Catalog:
        """Open (creating if needed) the catalog and master key in ``data_dir``.

        ``catalog_file``: the SQLite file when it is not ``<data_dir>/catalog.db`` (FACELEDGER_STORE).
        """
        path = Path(data_dir)
        secure_data_dir(path)  # 0700, files 0600: face templates are nobody else's to read
        file = Path(catalog_file) if catalog_file is not None else path / CATALOG_FILE
        create_private(file)  # SQLite creates -wal and -shm with the file's mode
        db = Database(file)
        try:
            sealer = _open_sealer(db, path)
            _seal_legacy_vectors(db, sealer)
        except BaseException:
            db.close()
            raise
        return cls(path, db, sealer)

    @classmethod
    def open_postgres(cls, data_dir: str | Path, url: str) -> Catalog:
        """The same catalog on PostgreSQL; the master key still lives in (and only in) ``data_dir``."""
        from faceledger.store.pg_db import PgDatabase

        path = Path(data_dir)
        secure_data_dir(path)
        pg = PgDatabase(url)
        try:
            sealer = _open_sealer(pg, path)  # type: ignore[arg-type]
        except BaseException:
            pg.close()
            raise
        return cls(path, pg, sealer)  # type: ignore[arg-type]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any exception rolls everything back."""
        with self._db.transaction() as tx:
            yield tx

    def ping(self) -> None:
        """Raise (PostgreSQL: StoreUnavailableError, 503) unless the store answers a statement now."""
        self._db.ping()

    @property
    def path(self) -> Path:
        return self._db.path

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``: which engine holds this catalog."""
        return dialect.of(self._db.connection())

    @property
    def vector_pool(self) -> Any:
        """PostgreSQL: the catalog's connection pool, which PgVectorIndex reads through; None on SQLite."""
        return getattr(self._db, "pool", None)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for readers in this package (the ledger)."""
        return self._db.connection()

    def write_connection(self, tx: Transaction) -> sqlite3.Connection:
        """The connection behind ``tx``, checked to belong to this catalog."""
        conn = tx.conn
        if conn is not self._db.connection():
            raise RuntimeError("this transaction belongs to another catalog")
        return conn

    # -- collections -------------------------------------------------------

    def create_collection(
        self,
        tx: Transaction,
        collection_id: str,
        model_version: str,
        tags: dict[str, str],
        created_at: float,
        dim: int = collections.VECTOR_DIM,
        metric: str = "euclidean",
    ) -> dict[str, Any]:
        return collections.create(self.write_connection(tx), collection_id, model_version, tags, created_at,
                                  dim, metric)

    # -- migration in place (store/staging.py) ------------------------------

    def stage_vectors(self, tx: Transaction, collection_id: str, model_version: str, dim: int,
                      vectors: list[tuple[str, Any, str]], at: float) -> None:
        staging.stage(self.write_connection(tx), self._sealer, collection_id, model_version, dim, vectors, at)

    def unstaged_faces(self, collection_id: str, model_version: str, limit: int) -> list[str]:
        return staging.pending(self.connection(), collection_id, model_version, limit)

    def discard_staged(self, tx: Transaction, collection_id: str, other_than: str | None = None) -> int:
        return staging.discard(self.write_connection(tx), collection_id, other_than)

    def swap_staged(self, tx: Transaction, collection_id: str, model_version: str, dim: int,
                    metric: str) -> dict[str, int]:
        return staging.swap(self.write_connection(tx), collection_id, model_version, dim, metric)

    def get_collection(self, collection_id: str) -> dict[str, Any]:
        return collections.get(self.connection(), collection_id)

    def list_collections(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        return collections.list_page(self.connection(), after, limit)

    def delete_collection(self, tx: Transaction, collection_id: str) -> int:
        return collections.delete(self.write_connection(tx), collection_id)

    def set_collection_tags(
        self, tx: Transaction, collection_id: str, tags: dict[str, str]
    ) -> dict[str, Any]:
        """Replace a collection's tags (merge or remove in the caller)."""
        return collections.set_tags(self.write_connection(tx), collection_id, tags)

    # -- faces -------------------------------------------------------------

    def add_faces(self, tx: Transaction, collection_id: str, faces_: list[dict[str, Any]]) -> None:
        faces.add(self.write_connection(tx), collection_id, faces_, self._sealer)

    def get_faces(
        self, collection_id: str, face_ids: list[str], with_vectors: bool = False
    ) -> list[dict[str, Any]]:
        return faces.get(self.connection(), collection_id, face_ids, self._sealer if with_vectors else None)

    def list_faces(
        self,
        collection_id: str,
        after: str | None,
        limit: int,
        user_id: str | None = None,
        face_ids: list[str] | None = None,
        with_vectors: bool = False,
    ) -> list[dict[str, Any]]:
        return faces.list_page(
            self.connection(), collection_id, after, limit, user_id, face_ids,
            self._sealer if with_vectors else None,
        )

    def delete_faces(
        self,
        tx: Transaction,
        collection_id: str,
        face_ids: list[str],
        keep_associated: bool = False,
    ) -> list[str]:
        return faces.delete(self.write_connection(tx), collection_id, face_ids, keep_associated)

    def faces_created_before(self, collection_id: str, before: float) -> list[str]:
        return faces.created_before(self.connection(), collection_id, before)

    def faces_with_consent(self, consent_id: str) -> list[tuple[str, str]]:
        return faces.with_consent(self.connection(), consent_id)

    def faces_with_consents(self, consent_ids: list[str]) -> list[tuple[str, str, str]]:
        return faces.with_consents(self.connection(), consent_ids)

    def open_vector(self, sealed: bytes, face_id: str, plain_len: int = 4 * collections.VECTOR_DIM) -> bytes:
        """A sealed vector blob of this catalog, opened (``store migrate`` copies plaintext into pgvector)."""
        return self._sealer.open_vector(sealed, face_id, plain_len)

    def iter_vectors(self, collection_id: str) -> tuple[list[str], np.ndarray]:
        return faces.iter_vectors(self.connection(), collection_id, self._sealer)

    def find_face_by_image_hash(
        self, collection_id: str, image_sha256: str
    ) -> list[dict[str, Any]]:
        return faces.find_by_image_hash(self.connection(), collection_id, image_sha256)

    # -- users -------------------------------------------------------------

    def create_user(
        self, tx: Transaction, collection_id: str, user_id: str, created_at: float
    ) -> dict[str, Any]:
        return users.create(self.write_connection(tx), collection_id, user_id, created_at)

    def get_user(self, collection_id: str, user_id: str) -> dict[str, Any]:
        return users.get(self.connection(), collection_id, user_id)

    def delete_user(self, tx: Transaction, collection_id: str, user_id: str) -> None:
        users.delete(self.write_connection(tx), collection_id, user_id)

    def list_users(
        self, collection_id: str, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return users.list_page(self.connection(), collection_id, after, limit)

    def associate_faces(
        self, tx: Transaction, collection_id: str, user_id: str, face_ids: list[str]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        return users.associate(self.write_connection(tx), collection_id, user_id, face_ids)

    def disassociate_faces(
        self, tx: Transaction, collection_id: str, user_id: str, face_ids: list[str]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        return users.disassociate(self.write_connection(tx), collection_id, user_id, face_ids)

    def user_face_ids(self, collection_id: str, user_id: str) -> list[str]:
        return users.face_ids(self.connection(), collection_id, user_id)

    # -- idempotency -------------------------------------------------------

    def idempotent_get(self, operation: str, token: str) -> tuple[str, dict[str, Any]] | None:
        return state.idempotent_get(self.connection(), operation, token)

    def claim_token(self, tx: Transaction, operation: str, token: str) -> None:
        """Serialise requests carrying one token (see state.claim_token); then read, work, put in ``tx``."""
        state.claim_token(self.write_connection(tx), operation, token)

    def idempotent_put(
        self,
        tx: Transaction,
        operation: str,
        token: str,
        params_hash: str,
        response: dict[str, Any],
    ) -> None:
        state.idempotent_put(self.write_connection(tx), operation, token, params_hash, response)

    def purge_idempotency(self, tx: Transaction, older_than: float, token_prefix: str = "") -> int:
        return state.purge_idempotency(self.write_connection(tx), older_than, token_prefix)

    # -- keys --------------------------------------------------------------

    def create_key(
        self,
        tx: Transaction,
        role: str,
        label: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        return keys.create(self.write_connection(tx), self._sealer, role, label, defaults)

    def get_key(self, access_key_id: str) -> dict[str, Any] | None:
        return keys.get(self.connection(), self._sealer, access_key_id)

    def list_keys(self) -> list[dict[str, Any]]:
        return keys.list_all(self.connection())

    def revoke_key(self, tx: Transaction, access_key_id: str) -> None:
        keys.revoke(self.write_connection(tx), access_key_id)

    # -- consents and reviews ------------------------------------------------

    def create_consent(self, tx: Transaction, record: dict[str, Any]) -> dict[str, Any]:
        return accountability.create_consent(self.write_connection(tx), record)

    def get_consent(self, consent_id: str) -> dict[str, Any]:
        return accountability.get_consent(self.connection(), consent_id)

    def lock_consent(self, tx: Transaction, consent_id: str, exclusive: bool = False) -> dict[str, Any]:
        """The consent, its row held to ``tx``'s end (shared: enrolments under it; exclusive: its withdrawal)."""
        return accountability.get_consent(self.write_connection(tx), consent_id, "update" if exclusive else "share")

    def list_consents(self, subject: str | None = None) -> list[dict[str, Any]]:
        return accountability.list_consents(self.connection(), subject)

    def withdraw_consent(self, tx: Transaction, consent_id: str, at: float) -> dict[str, Any]:
        return accountability.withdraw_consent(self.write_connection(tx), consent_id, at)

    def add_review(self, tx: Transaction, search_seq: int, candidate: str, reviewer: str, decision: str,
                   reason: str, at: float) -> None:
        accountability.add_review(self.write_connection(tx), search_seq, candidate, reviewer, decision, reason, at)

    def reviews_for(self, search_seq: int) -> list[dict[str, Any]]:
        return accountability.reviews_for(self.connection(), search_seq)

    def all_reviews(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        return accountability.all_reviews(self.connection(), since, until)

    def add_pending_review(self, tx: Transaction, search_seq: int, collection_id: str | None) -> None:
        accountability.add_pending(self.write_connection(tx), search_seq, collection_id)

    def pending_reviews(self, collection_id: str | None = None, after_seq: int = 0, limit: int = 500) -> list[int]:
        return accountability.pending(self.connection(), collection_id, after_seq, limit)

    def drop_pending_reviews(self, tx: Transaction, search_seqs: list[int]) -> None:
        accountability.drop_pending(self.write_connection(tx), search_seqs)

    # -- thumbnails (sealed) ---------------------------------------------

    def add_thumbnail(self, tx: Transaction, face_id: str, collection_id: str, jpeg: bytes, at: float,
                      expires_at: float) -> None:
        thumbnails.add_face(self.write_connection(tx), self._sealer, face_id, collection_id, jpeg, at, expires_at)

    def get_thumbnail(self, face_id: str) -> bytes | None:
        return thumbnails.get_face(self.connection(), self._sealer, face_id)

    def add_probe_thumbnail(self, tx: Transaction, search_seq: int, collection_id: str, jpeg: bytes, at: float,
                            expires_at: float) -> None:
        thumbnails.add_probe(self.write_connection(tx), self._sealer, search_seq, collection_id, jpeg, at,
                             expires_at)

    def get_probe_thumbnail(self, search_seq: int) -> bytes | None:
        return thumbnails.get_probe(self.connection(), self._sealer, search_seq)

    def expired_thumbnails(self, now: float) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
        return thumbnails.expired(self.connection(), now)

    def delete_thumbnails(self, tx: Transaction, face_ids: list[str], search_seqs: list[int]) -> int:
        conn = self.write_connection(tx)
        return thumbnails.delete_faces(conn, face_ids) + thumbnails.delete_probes(conn, search_seqs)

    # -- state -------------------------------------------------------------

    def get_state(self, name: str) -> Any:
        return state.get_state(self.connection(), name)

    def set_state(self, tx: Transaction, name: str, value: Any) -> None:
        state.set_state(self.write_connection(tx), name, value)


    # -- several processes: the face change log and leases (schema v6) ---------

    def face_changes_head(self) -> int:
        return changes.head(self.connection())

    def face_changes_since(self, after: int, limit: int) -> list[changes.Change]:
        return changes.since(self.connection(), after, limit)

    def faces_present(self, collection_id: str, face_ids: list[str]) -> set[str]:
        return changes.present(self.connection(), collection_id, face_ids)

    def prune_face_changes(self, tx: Transaction, before: float) -> int:
        return changes.prune(self.write_connection(tx), before)

    def claim_lease(self, tx: Transaction, name: str, owner: str, now: float, ttl_s: float) -> bool:
        return leases.claim(self.write_connection(tx), name, owner, now, ttl_s)

    def renew_lease(self, tx: Transaction, name: str, owner: str, now: float, ttl_s: float) -> bool:
        return leases.renew(self.write_connection(tx), name, owner, now, ttl_s)

    def steal_lease(self, tx: Transaction, name: str, dead_owner: str, owner: str, now: float,
                    ttl_s: float) -> bool:
        return leases.steal(self.write_connection(tx), name, dead_owner, owner, now, ttl_s)

    def release_lease(self, tx: Transaction, name: str, owner: str) -> None:
        leases.release(self.write_connection(tx), name, owner)

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        return leases.holder(self.connection(), name)


def _seal_legacy_vectors(db: Database, sealer: Sealer, batch: int = 5000) -> int:
    """Encrypt the vectors an older faceledger stored in plaintext; returns how many.

    One transaction per batch, so an upgrade of a large catalog cut short is
    simply resumed at the next open (plaintext and sealed rows both read).
    """
    conn = db.connection()
    pending = faces.plaintext_count(conn)
    if not pending:
        return 0
    log.warning("sealing %d face vector(s) stored in plaintext by an older faceledger", pending)
    last = done = 0
    while True:
        with db.transaction() as tx:
            upto = faces.seal_plaintext(tx.conn, sealer, last, batch)
        if not upto:
            break
        last = upto
    done = pending - faces.plaintext_count(conn)
    # secure_delete zeroed the old cells; VACUUM rewrites the file and the truncated WAL drops
    # the old page images. Best effort: the vectors are sealed whether or not it succeeds.
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as exc:
        log.warning("could not rewrite %s after sealing (%s): old plaintext may remain in free pages "
                    "until the file is vacuumed", db.path, exc)
    return done


def _open_sealer(db: Database, data_dir: Path) -> Sealer:
    """Load the master key, creating it only for a catalog that has no sealed secrets."""
    conn = db.connection()
    recorded = state.get_state(conn, _FINGERPRINT)
    fresh = recorded is None and keys.count(conn) == 0
    sealer = Sealer(load_or_create_master_key(data_dir, create=fresh))
    if recorded is None:
        with db.transaction() as tx:
            state.set_state(tx.conn, _FINGERPRINT, sealer.fingerprint)
    elif recorded != sealer.fingerprint:
        raise SealError(
            f"{data_dir / MASTER_KEY_FILE} is not the master key this catalog was "
            "created with; restore the original key file"
        )
    return sealer
