"""An operator-supplied normalisation cohort (FACELEDGER_COHORT_FILE or <data_dir>/cohorts/<version>.npy)."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import MODEL_VERSION, Engine, EngineSettings
from faceledger.errors import PackUnavailableError
from faceledger.service import create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder

from .test_operations import img, run
from .test_scoring_service import COLOURS, enrol, last


def make(data_dir, **kw):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=data_dir, **kw)
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    catalog = Catalog.open(data_dir)
    try:
        return create(settings, catalog, VectorIndex(), EnginePool(EngineSettings(), engine=engine))
    except BaseException:
        catalog.close()
        raise


@pytest.fixture
def data_dir(tmp_path):  # type: ignore[no-untyped-def]
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_a_cohort_file_normalises_a_collection_too_small_to_be_its_own(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cohort = tmp_path / "broad.npy"
    np.save(cohort, np.random.default_rng(5).standard_normal((700, 128)).astype(np.float32) * 0.1)
    svc = make(data_dir, cohort_file=str(cohort))
    try:
        enrol(svc)  # six faces: as its own cohort it would be inactive (fewer than 500)
        out = run(svc, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
        assert out["Faceledger"]["ScoreNormalization"].startswith("snorm-") and out["Faceledger"]["CohortSize"] == 700
        assert last(svc, "SearchFacesByImage")["cohort_size"] == 700
        cmp = run(svc, "CompareFaces", SourceImage=img(COLOURS[0]), TargetImage=img(COLOURS[0]))
        assert cmp["Faceledger"]["CohortSize"] == 700
    finally:
        svc.close()
    plain = make(data_dir)  # without it: the collection itself, too small
    try:
        out = run(plain, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
        assert out["Faceledger"]["ScoreNormalization"] == "inactive"
    finally:
        plain.close()


def test_a_per_pack_cohort_file_in_the_data_directory(data_dir) -> None:  # type: ignore[no-untyped-def]
    (data_dir / "cohorts").mkdir()
    np.save(data_dir / "cohorts" / f"{MODEL_VERSION}.npy", np.ones((3000, 128), np.float32))
    svc = make(data_dir)
    try:
        assert svc.packs.default.cohort is not None and len(svc.packs.default.cohort) == 2000  # COHORT_MAX rows
    finally:
        svc.close()


@pytest.mark.parametrize(("array", "why"), [
    (np.zeros((600, 192), np.float32), r"shape \(600, 192\).*\(m, 128\)"),
    (np.zeros((10, 128), np.float32), "10 descriptors; at least 500"),
    (np.full((600, 128), np.nan, np.float32), "NaN"),
    (np.zeros((600, 128), np.int32), "int32"),
])
def test_a_bad_cohort_file_is_refused_at_start_with_the_reason(data_dir, tmp_path, array, why) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.npy"
    np.save(path, array)
    with pytest.raises(PackUnavailableError, match=why):
        make(data_dir, cohort_file=str(path))


def test_an_unreadable_cohort_file_is_refused(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.npy").write_bytes(b"not numpy")
    with pytest.raises(PackUnavailableError, match="cannot read cohort file"):
        make(data_dir, cohort_file=str(tmp_path / "c.npy"))
    with pytest.raises(PackUnavailableError, match="cannot read cohort file"):
        make(data_dir, cohort_file=str(tmp_path / "missing.npy"))
