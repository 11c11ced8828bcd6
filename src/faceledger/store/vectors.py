"""In-memory exact nearest-neighbour index of face descriptors, per collection.

Each collection has its own descriptor dimension ``dim`` and metric, given
when it is created or loaded (its pack's; dlib's ResNet: 128-d, Euclidean,
the default). Vectors are float32, shape ``(dim,)``. With ``metric="cosine"``
the shard keeps L2-normalised rows, scores on them by Euclidean distance
(``d² = 2 - 2 cos``, the same order) and reports the cosine distance
``1 - cos = d² / 2`` in [0, 2]; ``max_distance`` is read in the collection's
metric either way. Each collection
keeps one contiguous ``(capacity, dim)`` matrix that doubles when full, the
rows' squared norms, and a face-id → row map; removal swaps the last row into
the hole. A search computes ``||x||^2 - 2 q·x`` for every row with one BLAS
call, bounds the k-th best score from a strided sample, and re-ranks the few
survivors with exact float64 distances, so results equal brute force.

The index is a cache of the catalog (which holds every vector in its face
row): it is rebuilt from the catalog at start-up and kept in step by the
service. It must not be the only copy of anything, and it knows nothing of
thresholds, similarity or policy.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from faceledger.errors import PackUnavailableError
from faceledger.store.rwlock import RWLock

DIM = 128  # the built-in pack's dimension, the default for a collection that names none
METRICS = ("euclidean", "cosine")
_GENERATIONS = itertools.count(1)
_MIN_CAPACITY = 1024
_SAMPLE = 16384  # sample size used to bound the k-th best score
_REL_SLACK = 1e-4  # float32 error allowance, relative to the scores' magnitude
_QUERY_BLOCK_FLOATS = 1 << 24  # at most 64 MiB of scores per block of queries

Match = tuple[str, float]


class Matches(list[Match]):
    """A search's matches, nearest first, and whether the search that found them was exact.

    ``exact`` False means an approximate (ANN) scan answered, which may miss a
    mate; ``recall_estimate`` is then its measured recall@1 (docs/benchmarks.md,
    "pgvector"). The service reports both in the response headers and the
    ledger record. The in-memory index is always exact.
    """

    def __init__(self, matches: Iterable[Match] = (), *, exact: bool = True,
                 recall_estimate: float | None = None) -> None:
        super().__init__(matches)
        self.exact = exact
        self.recall_estimate = recall_estimate


def limit_blas_threads(threads: int = 1) -> bool:
    """Cap the BLAS thread pool process-wide; returns False if it could not.

    Scoring is one matrix-vector product, bound by memory bandwidth, so BLAS
    threads buy little, and on small machines their wake-up latency costs
    milliseconds per search (measured: 10k vectors, 8 ms with two OpenBLAS
    threads, 0.2 ms with one). Concurrent searches use the cores instead.
    The service calls this once at start-up; it needs ``threadpoolctl``
    (setting ``OPENBLAS_NUM_THREADS=1`` before numpy loads works too).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=threads, user_api="blas")
    return True


def _as_matrix(matrix: np.ndarray | Sequence[Sequence[float]], rows: int | None = None,
               dim: int | None = DIM) -> np.ndarray:
    """A checked contiguous float32 ``(N, dim)`` matrix (``dim=None``: any width, for an unknown collection)."""
    arr = np.ascontiguousarray(matrix, dtype=np.float32)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, dim or DIM)
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim):
        raise ValueError(f"vectors must have shape (N, {dim}), got {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"{rows} face ids but {arr.shape[0]} vectors")
    if not np.all(np.isfinite(arr)):
        raise ValueError("vectors must be finite (no NaN or infinity)")
    return arr


def _candidates(scores: np.ndarray, k: int, limit: float, slack: float) -> np.ndarray:
    """Row numbers that surely include the k best (lowest) scores ≤ ``limit``."""
    n = scores.shape[0]
    bound = limit
    if n > 4 * _SAMPLE and k < _SAMPLE:
        # The k-th best of any subset is no better than the k-th best of all rows.
        sample = scores[:: n // _SAMPLE]
        bound = min(bound, float(np.partition(sample, k - 1)[k - 1]) + slack)
    cand = np.arange(n) if math.isinf(bound) else np.flatnonzero(scores <= bound)
    if cand.shape[0] > 2 * k + 64:
        sub = scores[cand]
        kth = float(np.partition(sub, k - 1)[k - 1])
        cand = cand[sub <= kth + slack]
    return cand


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero: cosine distance 1 to everything)."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    return (matrix / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32, copy=False)


class _Shard:
    """One collection's vectors. Guarded by its own readers/writer lock."""

    def __init__(self, dim: int = DIM, metric: str = "euclidean", pack: str | None = None) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, not {dim!r}")
        self.dim, self.metric = dim, metric
        self.pack = pack  # the model pack whose vectors these are, fixed for the shard's life (None: unnamed)
        self.cosine = metric == "cosine"
        self.lock = RWLock()
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.mat = np.zeros((0, dim), dtype=np.float32)
        self.norms = np.zeros(0, dtype=np.float32)
        self.max_norm2 = 0.0
        # changed by every change, from one process-wide counter: a collection deleted and re-created
        # never shows a generation it had before, so caches derived from the contents can tell
        self.generation = next(_GENERATIONS)

    @property
    def n(self) -> int:
        return len(self.ids)

    def _reserve(self, needed: int) -> None:
        cap = self.mat.shape[0]
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap, _MIN_CAPACITY)
        mat = np.empty((new_cap, self.dim), dtype=np.float32)
        norms = np.empty(new_cap, dtype=np.float32)
        mat[: self.n] = self.mat[: self.n]
        norms[: self.n] = self.norms[: self.n]
        self.mat, self.norms = mat, norms

    def _shrink(self) -> None:
        cap = self.mat.shape[0]
        if cap > _MIN_CAPACITY and self.n < cap // 4:
            new_cap = max(cap // 2, _MIN_CAPACITY)
            self.mat = self.mat[:new_cap].copy()
            self.norms = self.norms[:new_cap].copy()

    def add(self, face_ids: Sequence[str], matrix: np.ndarray) -> None:
        """Insert rows; an id already present has its vector replaced (last one wins)."""
        self.generation = next(_GENERATIONS)
        if self.cosine:
            matrix = _unit_rows(matrix)
        norms = np.einsum("ij,ij->i", matrix, matrix)
        if len(set(face_ids)) != len(face_ids):
            keep = sorted({face_id: i for i, face_id in enumerate(face_ids)}.values())
            face_ids, matrix, norms = [face_ids[i] for i in keep], matrix[keep], norms[keep]
        known = np.fromiter((f in self.rows for f in face_ids), dtype=bool, count=len(face_ids))
        if known.any():
            where = np.flatnonzero(known)
            rows = [self.rows[face_ids[int(i)]] for i in where]
            self.mat[rows] = matrix[where]
            self.norms[rows] = norms[where]
            fresh = np.flatnonzero(~known)
            face_ids, matrix, norms = [face_ids[int(i)] for i in fresh], matrix[fresh], norms[fresh]
        start, count = self.n, len(face_ids)
        self._reserve(start + count)
        self.mat[start : start + count] = matrix
        self.norms[start : start + count] = norms
        self.ids.extend(face_ids)
        self.rows.update(zip(face_ids, range(start, start + count), strict=True))
        if len(norms):
            self.max_norm2 = max(self.max_norm2, float(norms.max()))

    def remove(self, face_ids: Iterable[str]) -> int:
        self.generation = next(_GENERATIONS)
        removed = 0
        for face_id in face_ids:
            row = self.rows.pop(face_id, None)
            if row is None:
                continue
            last = self.n - 1
            if row != last:
                moved = self.ids[last]
                self.mat[row] = self.mat[last]
                self.norms[row] = self.norms[last]
                self.ids[row] = moved
                self.rows[moved] = row
            self.ids.pop()
            removed += 1
        self._shrink()
        return removed

    def _rank(self, q: np.ndarray, scores: np.ndarray, k: int, max_distance: float | None) -> list[Match]:
        """Exact top-k for one query from its approximate scores ``||x||^2 - 2 q·x``."""
        qn = float(q @ q)
        slack = _REL_SLACK * (self.max_norm2 + qn + 2 * math.sqrt(self.max_norm2 * qn)) + 1e-12
        limit = math.inf if max_distance is None else max_distance**2 - qn + slack
        cand = _candidates(scores, k, limit, slack)
        if cand.shape[0] == 0:
            return []
        diff = self.mat[cand].astype(np.float64) - q.astype(np.float64)
        dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        ids = [self.ids[i] for i in cand]
        order = sorted(range(len(ids)), key=lambda i: (dist[i], ids[i]))
        out = [(ids[i], float(dist[i])) for i in order[:k]]
        if max_distance is not None:
            out = [m for m in out if m[1] <= max_distance]
        return out

    def search_batch(self, queries: np.ndarray, k: int, max_distance: float | None) -> list[list[Match]]:
        """Matches in the collection's metric (cosine: ranked on unit vectors, reported as ``1 - cos``)."""
        if not self.cosine:
            return self._search_euclidean(queries, k, max_distance)
        radius = None if max_distance is None else math.sqrt(2.0 * min(max(max_distance, 0.0), 2.0))
        found = self._search_euclidean(_unit_rows(queries), k, radius)
        return [[(fid, min(2.0, d * d / 2.0)) for fid, d in matches] for matches in found]

    def _search_euclidean(self, queries: np.ndarray, k: int, max_distance: float | None) -> list[list[Match]]:
        n = self.n
        if n == 0 or k <= 0:
            return [[] for _ in range(queries.shape[0])]
        k = min(k, n)
        mat, norms = self.mat[:n], self.norms[:n]
        results: list[list[Match]] = []
        if queries.shape[0] == 1:  # gemv path: no (1, n) temporary layout games
            scores = mat @ (-2.0 * queries[0])
            scores += norms
            return [self._rank(queries[0], scores, k, max_distance)]
        block = max(1, _QUERY_BLOCK_FLOATS // n)
        for start in range(0, queries.shape[0], block):
            qs = queries[start : start + block]
            scores = qs @ mat.T
            scores *= -2.0
            scores += norms
            results.extend(self._rank(q, s, k, max_distance) for q, s in zip(qs, scores, strict=True))
        return results


class VectorIndex:
    """Exact k-NN over face vectors, one shard per collection with its own dim and metric. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shards: dict[str, _Shard] = {}

    def _shard(self, collection_id: str, expect: str | None = None) -> _Shard | None:
        """The collection's shard; with ``expect``, PackUnavailableError unless it holds that pack's vectors."""
        with self._lock:
            shard = self._shards.get(collection_id)
        if shard is not None and expect is not None and shard.pack is not None and shard.pack != expect:
            raise PackUnavailableError(
                f"Collection {collection_id} now holds {shard.pack} vectors, not {expect}: it was migrated "
                "while this call ran. Vectors of different model packs are never compared; retry the call.")
        return shard

    def load(self, collection_id: str, face_ids: Sequence[str], matrix: np.ndarray, *,
             dim: int = DIM, metric: str = "euclidean", pack: str | None = None) -> None:
        """Replace the collection's contents, dim, metric and pack (start-up, from ``Catalog.iter_vectors``).

        Another pack (or shape) than the shard had makes a new shard: a call holding the old one
        finishes on the old vectors, and one that names the pack it expects (``expect``) is refused.
        """
        matrix = _as_matrix(matrix, len(face_ids), dim)
        fresh = _Shard(dim, metric, pack)
        fresh.add(list(face_ids), matrix)
        with self._lock:
            shard = self._shards.get(collection_id)
            if shard is None or (shard.dim, shard.metric, shard.pack) != (dim, metric, pack):
                self._shards[collection_id] = fresh
                return
        with shard.lock.write():
            shard.ids, shard.rows = fresh.ids, fresh.rows
            shard.mat, shard.norms, shard.max_norm2 = fresh.mat, fresh.norms, fresh.max_norm2
            shard.generation = next(_GENERATIONS)

    def spec(self, collection_id: str) -> tuple[int, str] | None:
        """The collection's ``(dim, metric)``, None for an unknown collection."""
        shard = self._shard(collection_id)
        return None if shard is None else (shard.dim, shard.metric)

    def add(self, collection_id: str, face_ids: Sequence[str], matrix: np.ndarray) -> None:
        """Add vectors (an existing id is overwritten); all-or-nothing for readers.

        A collection not loaded yet is made with the default dim and metric; one of another
        pack is made by ``load`` (the service does so when it creates the collection).
        """
        with self._lock:
            shard = self._shards.get(collection_id)
            if shard is None:
                shard = self._shards[collection_id] = _Shard()
        matrix = _as_matrix(matrix, len(face_ids), shard.dim)
        with shard.lock.write():
            shard.add(list(face_ids), matrix)

    def remove(self, collection_id: str, face_ids: Iterable[str]) -> int:
        """Remove vectors by face id; unknown ids are ignored. Returns how many went."""
        shard = self._shard(collection_id)
        if shard is None:
            return 0
        with shard.lock.write():
            return shard.remove(face_ids)

    def drop(self, collection_id: str) -> None:
        with self._lock:
            self._shards.pop(collection_id, None)

    def size(self, collection_id: str) -> int:
        shard = self._shard(collection_id)
        if shard is None:
            return 0
        with shard.lock.read():
            return shard.n

    def generation(self, collection_id: str) -> int:
        """A number that changes whenever the collection's contents do (0 for an unknown collection)."""
        shard = self._shard(collection_id)
        return 0 if shard is None else shard.generation

    def sample(self, collection_id: str, rows: Callable[[int], np.ndarray],
               expect: str | None = None) -> tuple[list[str], np.ndarray]:
        """Face ids and a copy of the vectors at ``rows(n)`` (row numbers for a collection of n faces)."""
        shard = self._shard(collection_id, expect)
        if shard is None:
            return [], np.zeros((0, DIM), dtype=np.float32)
        with shard.lock.read():
            pick = rows(shard.n)
            return [shard.ids[int(i)] for i in pick], shard.mat[pick].copy()

    def vectors(self, collection_id: str, face_ids: Sequence[str],
                expect: str | None = None) -> tuple[list[str], np.ndarray]:
        """The ids of ``face_ids`` still present (in order) and a copy of their vectors."""
        shard = self._shard(collection_id, expect)
        if shard is None:
            return [], np.zeros((0, DIM), dtype=np.float32)
        with shard.lock.read():
            present = [f for f in face_ids if f in shard.rows]
            return present, shard.mat[[shard.rows[f] for f in present]].copy()

    def collection_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._shards)

    def search(
        self,
        collection_id: str,
        query: np.ndarray,
        k: int,
        max_distance: float | None = None,
        expect: str | None = None,
    ) -> Matches:
        """The k nearest faces as ``(face_id, distance)``, nearest first (always exact).

        ``query`` is one vector ``(dim,)`` or several ``(Q, dim)`` (for example
        all faces of one user); with several, a face's distance is its
        distance to the nearest query. Ties break by face id. An unknown
        collection has no faces. ``expect``: the pack the caller's query vectors belong to;
        PackUnavailableError if the collection's vectors are another pack's.
        """
        queries = np.atleast_2d(np.asarray(query, dtype=np.float32))
        per_query = self.search_batch(collection_id, queries, k, max_distance, expect)
        if len(per_query) == 1:
            return Matches(per_query[0])
        best: dict[str, float] = {}
        for matches in per_query:
            for face_id, dist in matches:
                best[face_id] = min(dist, best.get(face_id, math.inf))
        return Matches(sorted(best.items(), key=lambda m: (m[1], m[0]))[: max(k, 0)])

    def search_batch(
        self,
        collection_id: str,
        queries: np.ndarray,
        k: int,
        max_distance: float | None = None,
        expect: str | None = None,
    ) -> list[list[Match]]:
        """One result list per row of ``queries`` ``(Q, dim)``; distances in the collection's metric."""
        shard = self._shard(collection_id, expect)
        queries = _as_matrix(queries, dim=None if shard is None else shard.dim)
        if shard is None:
            return [[] for _ in range(queries.shape[0])]
        with shard.lock.read():
            return shard.search_batch(queries, k, max_distance)
