"""Fixtures for the storage tests: a real catalog in tmp_path and a face factory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceledger.store import Catalog, Ledger
from faceledger.store.rows import new_id

FaceFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def catalog(data_dir: Path) -> Iterator[Catalog]:
    cat = Catalog.open(data_dir)
    try:
        yield cat
    finally:
        cat.close()


@pytest.fixture
def ledger(catalog: Catalog) -> Ledger:
    return Ledger(catalog)


@pytest.fixture
def make_face() -> FaceFactory:
    rng = np.random.default_rng(7)

    def make(**overrides: Any) -> dict[str, Any]:
        image = overrides.pop("image", b"image-bytes")
        face = {
            "face_id": new_id(),
            "image_id": new_id(),
            "external_image_id": "photo.jpg",
            "bbox": {"Width": 0.5, "Height": 0.4, "Left": 0.1, "Top": 0.2},
            "confidence": 99.5,
            "extra": {"Quality": {"Sharpness": 80.0}, "Pose": {"Yaw": 1.5}},
            "image_sha256": hashlib.sha256(image).hexdigest(),
            "created_at": 1_700_000_000.25,
            "vector": rng.standard_normal(128).astype(np.float32),
        }
        face.update(overrides)
        return face

    return make


@pytest.fixture
def collection(catalog: Catalog) -> str:
    with catalog.transaction() as tx:
        catalog.create_collection(tx, "people", "dlib-resnet-v1", {"team": "a"}, 1_700_000_000.0)
    return "people"
