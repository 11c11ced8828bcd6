"""A real service (real SQLite file, real ledger) over the engine's fakes: fast unit tests."""

from __future__ import annotations

import pytest

from faceledger.engine import Engine, EngineSettings
from faceledger.service import Principal, create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.opening import open_catalog
from faceledger.store.pg_vectors import PgVectorIndex
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder

# On a module or test: run it on the embedded store and on PostgreSQL (issue #14).
both_stores = pytest.mark.parametrize("service", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def service(tmp_path, request):  # type: ignore[no-untyped-def]
    store = ""
    if getattr(request, "param", "sqlite") == "postgresql":
        store = request.getfixturevalue("pg_url")
    settings = Settings(data_dir=tmp_path / "data", store=store)
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    catalog = open_catalog(settings)
    # as Service.open_store chooses: pgvector over the catalog's pool on PostgreSQL
    index = PgVectorIndex(catalog.vector_pool) if store else VectorIndex()
    svc = create(settings, catalog, index, EnginePool(EngineSettings(), engine=engine))
    yield svc
    svc.close()


def principal(role: str = "admin") -> Principal:
    return Principal(access_key_id=f"AKIA{role.upper():0<16}"[:20], secret="x", role=role)


@pytest.fixture
def admin() -> Principal:
    return principal("admin")
