"""The in-memory VectorIndex kept in step with writes made by other processes on the same store.

With several API processes on one SQLite catalog each holds its own
:class:`~faceledger.store.vectors.VectorIndex`. Every read of this index
(search, size, vectors, sample...) first compares the catalog's face change
log head (store/changes.py: one indexed read, about 10 µs) with the sequence
number it has applied; when behind, it reads only the changes since then and,
for each face named there, adds it (if its row exists and the index lacks it)
or removes it (if its row is gone); a collection dropped or re-pinned to another
model pack (a migration in place swaps every vector) is dropped and, if it still
exists, reloaded whole with its pack's dim and metric. So a
face acknowledged by any process is found by the next search on every
other, and a deleted one is gone, without a full reload. A reader that fell
behind pruned entries (a gap in the sequence) reloads everything.

Consistency with this process's own writers: writers hold :attr:`writer_lock`
from BEGIN until the index matches their commit (Service.write_lock is this
lock), and a catch-up holds it too, so a catch-up never applies a stale
presence check over a newer local write. This module holds no thresholds or
policy; a PostgreSQL store searches pgvector and needs none of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from faceledger.errors import ResourceNotFoundError
from faceledger.store.changes import Change
from faceledger.store.vectors import Match, Matches, VectorIndex

BATCH = 10_000  # changes read per query while catching up
FULL_RELOAD_AFTER = 200_000  # further behind than this, a full reload is cheaper than face-by-face


class ChangeSource(Protocol):
    """What the catalog offers this index (store/catalog.py)."""

    def face_changes_head(self) -> int: ...
    def face_changes_since(self, after: int, limit: int) -> list[Change]: ...
    def faces_present(self, collection_id: str, face_ids: list[str]) -> set[str]: ...
    def get_faces(self, collection_id: str, face_ids: list[str], with_vectors: bool = False) -> list[dict]: ...
    def list_collections(self, after: str | None, limit: int) -> list[dict]: ...
    def get_collection(self, collection_id: str) -> dict: ...
    def iter_vectors(self, collection_id: str) -> tuple[list[str], np.ndarray]: ...


class SyncedIndex(VectorIndex):
    """A VectorIndex that catches up with the catalog's change log before every read."""

    def __init__(self, catalog: ChangeSource, writer_lock: threading.RLock | None = None) -> None:
        super().__init__()
        self._catalog = catalog
        self.writer_lock = writer_lock or threading.RLock()
        self._applied = 0
        self.catch_ups = 0  # how many times reads found the log ahead (for tests and /health)
        self.full_reloads = 0

    # -- loading and catching up ------------------------------------------
    def load_all(self) -> None:
        """Everything in the catalog (start-up, or a reader that fell behind a prune)."""
        with self.writer_lock:
            head = self._catalog.face_changes_head()  # before reading: later changes are applied again
            for cid in self.collection_ids_unsynced():
                self.drop(cid)
            for coll in self._catalog.list_collections(None, 1_000_000):
                self._load(coll)
            self._applied = head

    def _load(self, coll: dict) -> None:
        ids, matrix = self._catalog.iter_vectors(coll["collection_id"])
        self.load(coll["collection_id"], ids, matrix, dim=coll["dim"], metric=coll["metric"],
                  pack=coll["model_version"])

    def _reload(self, collection_id: str) -> None:
        """The collection whole from the catalog (made or re-pinned by another process); gone if dropped."""
        try:
            coll = self._catalog.get_collection(collection_id)
        except ResourceNotFoundError:
            self.drop(collection_id)
            return
        try:
            self._load(coll)
        except ResourceNotFoundError:  # dropped meanwhile: its own change row follows
            self.drop(collection_id)

    def refresh(self) -> None:
        """Apply the changes other processes committed since the last read (a no-op when none)."""
        if self._catalog.face_changes_head() <= self._applied:
            return
        with self.writer_lock:
            head = self._catalog.face_changes_head()
            if head <= self._applied:
                return
            self.catch_ups += 1
            if head - self._applied > FULL_RELOAD_AFTER:
                self.full_reloads += 1
                self.load_all()
                return
            while self._applied < head:
                batch = self._catalog.face_changes_since(self._applied, BATCH)
                if not batch or batch[0][0] != self._applied + 1:  # pruned past us
                    self.full_reloads += 1
                    self.load_all()
                    return
                self._apply(batch)
                self._applied = batch[-1][0]

    def _apply(self, batch: list[Change]) -> None:
        touched: dict[str, dict[str, None]] = {}
        whole: set[str] = set()
        for _, cid, face_id in batch:
            if face_id is None:  # dropped or re-pinned: what came before it is moot
                whole.add(cid)
                touched.pop(cid, None)
            elif cid not in whole:
                touched.setdefault(cid, {})[face_id] = None
        for cid in whole:
            self._reload(cid)
        for cid, ordered in touched.items():
            ids = list(ordered)
            if not ids:
                continue
            if VectorIndex.spec(self, cid) is None:  # made by another process: its pack decides the shape
                self._reload(cid)
                continue
            present = self._catalog.faces_present(cid, ids)
            self.remove(cid, [f for f in ids if f not in present])
            have, _ = VectorIndex.vectors(self, cid, [f for f in ids if f in present])
            missing = [f for f in ids if f in present and f not in set(have)]
            if not missing:
                continue
            try:
                rows = self._catalog.get_faces(cid, missing, with_vectors=True)
            except ResourceNotFoundError:  # dropped since: its own change row follows
                continue
            if rows:
                self.add(cid, [r["face_id"] for r in rows], np.stack([r["vector"] for r in rows]))

    def collection_ids_unsynced(self) -> list[str]:
        return VectorIndex.collection_ids(self)

    # -- this process's writes ----------------------------------------------
    def add(self, collection_id: str, face_ids: Sequence[str], matrix: np.ndarray) -> None:
        """Add after a local commit; a collection this index has not seen (made by another process and
        empty until now: no change row) is first loaded from the catalog with its pack's dim and metric."""
        with self.writer_lock:
            if VectorIndex.spec(self, collection_id) is None:
                self._reload(collection_id)
            super().add(collection_id, face_ids, matrix)

    # -- reads: catch up first --------------------------------------------
    def size(self, collection_id: str) -> int:
        self.refresh()
        return super().size(collection_id)

    def generation(self, collection_id: str) -> int:
        self.refresh()
        return super().generation(collection_id)

    def spec(self, collection_id: str) -> tuple[int, str] | None:
        self.refresh()
        return super().spec(collection_id)

    def sample(self, collection_id: str, rows: Callable[[int], np.ndarray],
               expect: str | None = None) -> tuple[list[str], np.ndarray]:
        self.refresh()
        return super().sample(collection_id, rows, expect)

    def vectors(self, collection_id: str, face_ids: Sequence[str],
                expect: str | None = None) -> tuple[list[str], np.ndarray]:
        self.refresh()
        return super().vectors(collection_id, face_ids, expect)

    def collection_ids(self) -> list[str]:
        self.refresh()
        return super().collection_ids()

    def search(self, collection_id: str, query: np.ndarray, k: int,
               max_distance: float | None = None, expect: str | None = None) -> Matches:
        self.refresh()
        return super().search(collection_id, query, k, max_distance, expect)

    def search_batch(self, collection_id: str, queries: np.ndarray, k: int,
                     max_distance: float | None = None, expect: str | None = None) -> list[list[Match]]:
        self.refresh()
        return super().search_batch(collection_id, queries, k, max_distance, expect)
