"""A real service (real SQLite file, real ledger) over the engine's fakes: fast unit tests."""

from __future__ import annotations

import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.service import Principal, create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder


@pytest.fixture
def service(tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    svc = create(settings, Catalog.open(settings.data_dir), VectorIndex(), EnginePool(EngineSettings(), engine=engine))
    yield svc
    svc.close()


def principal(role: str = "admin") -> Principal:
    return Principal(access_key_id=f"AKIA{role.upper():0<16}"[:20], secret="x", role=role)


@pytest.fixture
def admin() -> Principal:
    return principal("admin")
