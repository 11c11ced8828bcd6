"""Collections of packs other than dlib's: their own vector dim and metric in the catalog and the index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.errors import InvalidParameterError
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex

FaceFactory = Callable[..., dict[str, Any]]


def test_a_192_d_cosine_collection_round_trips_sealed(data_dir: Path, make_face: FaceFactory) -> None:
    rng = np.random.default_rng(3)
    faces = [make_face(vector=rng.standard_normal(192).astype(np.float32)) for _ in range(3)]
    with Catalog.open(data_dir) as cat:
        with cat.transaction() as tx:
            made = cat.create_collection(tx, "arc", "acme-arcface-3", {}, 1.0, 192, "cosine")
            cat.add_faces(tx, "arc", faces)
        assert (made["dim"], made["metric"]) == (192, "cosine")
        lengths = {r[0] for r in cat.connection().execute("SELECT length(vector) FROM faces")}
        assert lengths == {192 * 4 + 28}  # sealed
    with Catalog.open(data_dir) as cat:
        ids, mat = cat.iter_vectors("arc")
        want = {f["face_id"]: f["vector"] for f in faces}
        np.testing.assert_array_equal(mat, np.stack([want[i] for i in ids]))
        got = cat.get_faces("arc", [faces[0]["face_id"]], with_vectors=True)[0]["vector"]
        np.testing.assert_array_equal(got, faces[0]["vector"])


def test_a_vector_of_another_dim_is_refused_and_nothing_written(catalog: Catalog, make_face: FaceFactory) -> None:
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "arc", "acme-arcface-3", {}, 1.0, 192, "cosine")
    with pytest.raises(InvalidParameterError, match=r"shape \(192,\), got \(128,\)"):
        with catalog.transaction() as tx:
            catalog.add_faces(tx, "arc", [make_face(vector=np.zeros(192, np.float32)), make_face()])
    assert catalog.get_collection("arc")["face_count"] == 0
    with pytest.raises(InvalidParameterError, match="dimension"):
        with catalog.transaction() as tx:
            catalog.create_collection(tx, "bad", "m", {}, 1.0, 0, "euclidean")
    with pytest.raises(InvalidParameterError, match="metric"):
        with catalog.transaction() as tx:
            catalog.create_collection(tx, "bad", "m", {}, 1.0, 64, "manhattan")


def test_a_sealed_121_d_vector_is_never_taken_for_legacy_plaintext(data_dir: Path, make_face: FaceFactory) -> None:
    """121 floats sealed are 512 bytes, as long as an unsealed 128-d vector of a pre-v3 catalog."""
    face = make_face(vector=np.arange(121, dtype=np.float32))
    with Catalog.open(data_dir) as cat, cat.transaction() as tx:
        cat.create_collection(tx, "odd", "acme-121", {}, 1.0, 121, "euclidean")
        cat.add_faces(tx, "odd", [face])
    with Catalog.open(data_dir) as cat:  # the open-time sealing pass must leave it alone
        assert cat.connection().execute("SELECT length(vector) FROM faces").fetchone()[0] == 512
        np.testing.assert_array_equal(cat.iter_vectors("odd")[1][0], face["vector"])


def test_a_cosine_index_ranks_like_brute_force_and_reports_one_minus_cos() -> None:
    rng = np.random.default_rng(11)
    mat = rng.standard_normal((500, 192)).astype(np.float32) * rng.uniform(0.5, 3, (500, 1)).astype(np.float32)
    ids = [f"f{i:04d}" for i in range(500)]
    index = VectorIndex()
    index.load("arc", ids, mat, dim=192, metric="cosine")
    assert index.spec("arc") == (192, "cosine")
    q = rng.standard_normal(192).astype(np.float32) * 7
    unit = mat / np.linalg.norm(mat, axis=1, keepdims=True)
    cos_d = 1.0 - unit.astype(np.float64) @ (q / np.linalg.norm(q)).astype(np.float64)
    want = sorted(zip(cos_d, ids, strict=True))[:10]
    got = index.search("arc", q, 10)
    assert [g[0] for g in got] == [w[1] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[0] for w in want], rtol=1e-5, atol=1e-6)
    radius = float(want[4][0])
    assert [g[0] for g in index.search("arc", q, 10, max_distance=radius)] == [w[1] for w in want[:5]]
    with pytest.raises(ValueError, match=r"\(N, 192\)"):
        index.search("arc", np.zeros(128, np.float32), 3)
    index.load("c", [], np.zeros((0, 128), np.float32))  # the default: dlib's 128-d Euclidean
    assert index.spec("c") == (128, "euclidean")
