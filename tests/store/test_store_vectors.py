from __future__ import annotations

import threading

import numpy as np
import pytest

from faceledger.store import VectorIndex
from faceledger.store.vectors import _SAMPLE


def _ids(n: int, prefix: str = "f") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(n)]


def _brute(ids: list[str], mat: np.ndarray, q: np.ndarray, k: int,
           max_distance: float | None = None) -> list[tuple[str, float]]:
    dist = np.linalg.norm(mat.astype(np.float64) - q.astype(np.float64), axis=1)
    order = sorted(range(len(ids)), key=lambda i: (dist[i], ids[i]))
    out = [(ids[i], float(dist[i])) for i in order]
    if max_distance is not None:
        out = [m for m in out if m[1] <= max_distance]
    return out[:k]


def _assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-9, atol=1e-9)


def _dlib_like(rng: np.random.Generator, n: int) -> np.ndarray:
    # Descriptors cluster: unit-ish vectors scaled like dlib's (norm about 0.5-1).
    mat = rng.standard_normal((n, 128)).astype(np.float32)
    return mat / np.linalg.norm(mat, axis=1, keepdims=True) * 0.8


@pytest.mark.parametrize("n", [1, 50, 3000, 4 * _SAMPLE + 5000])
def test_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    mat, ids = _dlib_like(rng, n), _ids(n)
    index = VectorIndex()
    index.load("c", ids, mat)
    assert index.size("c") == n
    for k in (1, 5, 100):
        q = _dlib_like(rng, 1)[0]
        _assert_same(index.search("c", q, k), _brute(ids, mat, q, k))
    q = mat[0] + 0.01
    _assert_same(index.search("c", q, 10, max_distance=1.1), _brute(ids, mat, q, 10, 1.1))


def test_after_removals_and_overwrites() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    mat, ids = _dlib_like(rng, n), _ids(n)
    index = VectorIndex()
    index.add("c", ids[:2000], mat[:2000])
    index.add("c", ids[2000:], mat[2000:])
    gone = set(rng.choice(ids, size=4100, replace=False).tolist())
    assert index.remove("c", list(gone) + ["unknown"]) == len(gone)
    keep = [i for i, f in enumerate(ids) if f not in gone]
    k_ids, k_mat = [ids[i] for i in keep], mat[keep].copy()
    # Overwrite one vector in place.
    k_mat[0] = _dlib_like(rng, 1)[0]
    index.add("c", [k_ids[0]], k_mat[:1])
    assert index.size("c") == len(keep)
    for _ in range(5):
        q = _dlib_like(rng, 1)[0]
        _assert_same(index.search("c", q, 20), _brute(k_ids, k_mat, q, 20))
    _assert_same(index.search("c", k_mat[0], 1), [(k_ids[0], 0.0)])


def test_batch_and_multi_query() -> None:
    rng = np.random.default_rng(2)
    mat, ids = _dlib_like(rng, 800), _ids(800)
    index = VectorIndex()
    index.load("c", ids, mat)
    qs = _dlib_like(rng, 7)
    batch = index.search_batch("c", qs, 5)
    for q, got in zip(qs, batch, strict=True):
        _assert_same(got, _brute(ids, mat, q, 5))
    # Several queries: a face's distance is to its nearest query.
    dist = np.linalg.norm(mat[None, :, :].astype(np.float64) - qs[:, None, :], axis=2).min(axis=0)
    order = np.argsort(dist)[:5]
    _assert_same(index.search("c", qs, 5), [(ids[i], float(dist[i])) for i in order])


def test_edges() -> None:
    index = VectorIndex()
    q = np.zeros(128, dtype=np.float32)
    assert index.search("none", q, 5) == []
    assert index.size("none") == 0 and index.remove("none", ["x"]) == 0
    index.add("c", ["a", "b"], np.ones((2, 128), dtype=np.float32))
    assert index.search("c", q, 0) == []
    assert [m[0] for m in index.search("c", q, 10)] == ["a", "b"]  # ties by face id
    assert index.search("c", q, 10, max_distance=1.0) == []
    assert index.collection_ids() == ["c"]
    index.drop("c")
    assert index.size("c") == 0 and index.collection_ids() == []
    with pytest.raises(ValueError):
        index.add("c", ["a"], np.ones((1, 127), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add("c", ["a", "b"], np.ones((1, 128), dtype=np.float32))
    with pytest.raises(ValueError):
        index.search("c", np.full(128, np.nan, dtype=np.float32), 1)


def test_duplicate_ids_in_one_batch_last_wins() -> None:
    index = VectorIndex()
    vecs = np.stack([np.zeros(128), np.ones(128), np.full(128, 2.0)]).astype(np.float32)
    index.add("c", ["a", "b", "a"], vecs)
    assert index.size("c") == 2
    assert index.search("c", vecs[2], 1) == [("a", 0.0)]


def test_capacity_grows_and_shrinks() -> None:
    rng = np.random.default_rng(3)
    index = VectorIndex()
    ids = _ids(5000)
    mat = _dlib_like(rng, 5000)
    for start in range(0, 5000, 1000):
        index.add("c", ids[start:start + 1000], mat[start:start + 1000])
    index.remove("c", ids[10:])
    assert index.size("c") == 10
    _assert_same(index.search("c", mat[3], 3), _brute(ids[:10], mat[:10], mat[3], 3))


def test_concurrent_add_and_search_are_consistent() -> None:
    """8 threads: writers add batches of identical vectors, readers must see all or none."""
    index = VectorIndex()
    rng = np.random.default_rng(4)
    base = _dlib_like(rng, 2000)
    index.load("c", _ids(2000, "base"), base)
    batch_size, batches_per_writer = 50, 20
    errors: list[str] = []
    markers: list[np.ndarray] = [np.full(128, 5.0 + b, dtype=np.float32)
                                 for b in range(4 * batches_per_writer)]

    def writer(w: int) -> None:
        for j in range(batches_per_writer):
            b = w * batches_per_writer + j
            ids = [f"w{b:03d}-{i:02d}" for i in range(batch_size)]
            index.add("c", ids, np.tile(markers[b], (batch_size, 1)))

    def reader(r: int) -> None:
        local = np.random.default_rng(100 + r)
        for _ in range(100):
            b = int(local.integers(len(markers)))
            hits = index.search("c", markers[b], batch_size + 1, max_distance=0.0)
            if len(hits) not in (0, batch_size):
                errors.append(f"batch {b}: saw {len(hits)} of {batch_size}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert index.size("c") == 2000 + len(markers) * batch_size
    q = base[17]
    assert index.search("c", q, 1)[0][0] == "base0000017"
