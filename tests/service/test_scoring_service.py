"""Cohort normalisation as the service applies it: every matching operation scores alike and says how."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import Engine, EngineSettings, scoring
from faceledger.errors import InvalidParameterError
from faceledger.service import create
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings
from faceledger.store.catalog import Catalog
from faceledger.store.ledger import Ledger
from faceledger.store.vectors import VectorIndex
from faceledger.testing import FakeDetector, FakeEmbedder, png_bytes

from .test_operations import img, run

COLOURS = [(200, 30, 30), (30, 30, 200), (30, 200, 30), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def enrol(service) -> list[str]:  # type: ignore[no-untyped-def]
    run(service, "CreateCollection", CollectionId="people")
    ids = []
    for i, c in enumerate(COLOURS):
        out = run(service, "IndexFaces", CollectionId="people", Image=img(c), ExternalImageId=f"p{i}")
        ids.append(out["FaceRecords"][0]["Face"]["FaceId"])
    return ids


def last(service, op: str) -> dict:  # type: ignore[no-untyped-def]
    return Ledger(service.catalog).records(operation=op, limit=1)[0]["details"]


def test_small_collections_score_raw_and_say_so(service) -> None:  # type: ignore[no-untyped-def]
    enrol(service)
    out = run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
    assert out["FaceMatches"][0]["Similarity"] == 100
    assert out["Faceledger"]["ScoreNormalization"] == "inactive"
    assert out["Faceledger"]["CohortSize"] == 6 and out["Faceledger"]["CohortMinimum"] == scoring.COHORT_MIN
    rec = last(service, "SearchFacesByImage")
    assert rec["scoring"] == "inactive" and rec["cohort_size"] == 6
    assert rec["score_normalization"] == service.scorer.version  # the configured method, on every record


def test_every_matching_operation_is_normalised_when_the_cohort_is_big_enough(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(scoring, "COHORT_MIN", 3)
    ids = enrol(service)
    version = service.scorer.version
    by_image = run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
    assert by_image["Faceledger"]["ScoreNormalization"] == version and by_image["Faceledger"]["CohortSize"] == 6
    assert [m["Face"]["FaceId"] for m in by_image["FaceMatches"]] == [ids[0]]
    assert by_image["FaceMatches"][0]["Similarity"] == 100  # identical faces stay certain
    by_face = run(service, "SearchFaces", CollectionId="people", FaceId=ids[1])
    assert by_face["Faceledger"]["ScoreNormalization"] == version and by_face["FaceMatches"] == []
    compare = run(service, "CompareFaces", SourceImage=img((90, 90, 90)), TargetImage=img((90, 90, 90)))
    assert compare["Faceledger"]["ScoreNormalization"] == version and compare["FaceMatches"][0]["Similarity"] == 100
    assert last(service, "CompareFaces")["scoring"] == version
    run(service, "CreateUser", CollectionId="people", UserId="u1")
    run(service, "AssociateFaces", CollectionId="people", UserId="u1", FaceIds=[ids[3]])
    users = run(service, "SearchUsersByImage", CollectionId="people", Image=img(COLOURS[3]))
    assert users["Faceledger"]["ScoreNormalization"] == version
    assert [m["User"]["UserId"] for m in users["UserMatches"]] == ["u1"]
    assert last(service, "SearchUsersByImage")["cohort_size"] == 6
    # a deleted face leaves the cohort at once
    run(service, "DeleteFaces", CollectionId="people", FaceIds=[ids[5]])
    again = run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
    assert again["Faceledger"]["CohortSize"] == 5


def test_normalisation_can_be_switched_off(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(scoring, "COHORT_MIN", 3)
    settings = Settings(data_dir=tmp_path / "data", score_normalization="off")
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    svc = create(settings, Catalog.open(settings.data_dir), VectorIndex(), EnginePool(EngineSettings(), engine=engine))
    try:
        enrol(svc)
        out = run(svc, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))
        assert out["Faceledger"]["ScoreNormalization"] == "off" and "CohortSize" not in out["Faceledger"]
        rec = last(svc, "SearchFacesByImage")
        assert rec["score_normalization"] == "off" and rec["scoring"] == "off"
    finally:
        svc.close()


def test_an_unknown_mode_is_refused_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", score_normalization="zscore")
    settings.data_dir.mkdir()
    engine = Engine(EngineSettings(), detector=FakeDetector(), embedder=FakeEmbedder())
    catalog = Catalog.open(settings.data_dir)
    with pytest.raises(InvalidParameterError, match="FACELEDGER_SCORE_NORMALIZATION"):
        create(settings, catalog, VectorIndex(), EnginePool(EngineSettings(), engine=engine))
    catalog.close()


def test_status_and_transparency_report_name_the_scoring(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from faceledger.service.report import markdown, transparency

    enrol(service)
    run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))  # inactive: 6 < minimum
    monkeypatch.setattr(scoring, "COHORT_MIN", 3)
    run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[1]))  # normalised
    assert run(service, "GetStatus")["ScoreNormalization"] == service.scorer.version
    records = Ledger(service.catalog).records(limit=1000)
    report = transparency(records, 0, 2e9)
    assert report["score_normalizations"] == [service.scorer.version]
    assert report["searches_by_scoring"] == {"inactive": 1, "normalised": 1}
    assert service.scorer.version in markdown(report)


def flat(colour: tuple[int, int, int]) -> dict:
    """A face the fakes find but that is not sharp: it fails QualityFilter HIGH."""
    a = np.zeros((200, 200, 3), np.uint8)
    a[4:-4, 4:-4] = colour
    return {"Bytes": png_bytes(a)}


def test_nothing_to_score_is_not_an_error(service) -> None:  # type: ignore[no-untyped-def]
    ids = enrol(service)
    run(service, "CreateUser", CollectionId="people", UserId="u1")
    run(service, "AssociateFaces", CollectionId="people", UserId="u1", FaceIds=[ids[0]])
    again = run(service, "AssociateFaces", CollectionId="people", UserId="u1", FaceIds=[ids[0]])  # a retry
    assert "UnsuccessfulFaceAssociations" not in again or not again["UnsuccessfulFaceAssociations"]
    unknown = run(service, "AssociateFaces", CollectionId="people", UserId="u1",
                  FaceIds=["00000000-0000-0000-0000-000000000000"])
    assert unknown["UnsuccessfulFaceAssociations"][0]["Reasons"] == ["FACE_NOT_FOUND"]
    assert last(service, "AssociateFaces")["scoring"] == "inactive"  # association scores, and says how
    filtered = run(service, "CompareFaces", SourceImage=img((90, 90, 90)), TargetImage=flat((90, 90, 90)),
                   QualityFilter="HIGH")
    assert filtered["FaceMatches"] == []


def test_a_recreated_collection_never_reuses_the_deleted_ones_cohort(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(scoring, "COHORT_MIN", 3)
    old = enrol(service)
    run(service, "SearchFacesByImage", CollectionId="people", Image=img(COLOURS[0]))  # caches the cohort
    run(service, "DeleteCollection", CollectionId="people")
    run(service, "CreateCollection", CollectionId="people")
    for i in range(6):
        run(service, "IndexFaces", CollectionId="people", Image=img((10 + 40 * i, 240 - 30 * i, 120)))
    assert not set(service.cohorts.get("people").ids) & set(old)
    run(service, "DeleteCollection", CollectionId="people")
    service.cohorts.get("*")
    assert "people" not in service.cohorts._cache  # the deleted faces' vectors leave memory too


def test_the_reported_scoring_is_the_one_used(service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from faceledger.service import search

    monkeypatch.setattr(scoring, "COHORT_MIN", 6)
    ids = enrol(service)
    original = search.search_vector

    def then_delete(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = original(*args, **kwargs)
        run(service, "DeleteFaces", CollectionId="people", FaceIds=[ids[5]])  # lands between scoring and report
        return out

    monkeypatch.setattr(search, "search_vector", then_delete)
    out = run(service, "SearchFaces", CollectionId="people", FaceId=ids[0])
    assert out["Faceledger"]["ScoreNormalization"] == service.scorer.version and out["Faceledger"]["CohortSize"] == 6
