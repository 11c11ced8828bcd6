"""MigrateCollection: a collection re-described in place under another pack, from the images kept.

Two real packs (dlib's 5-point pipeline and the FaceMesh-aligned one). Originals are
found by SHA-256 in the service's buckets; a face enrolled from inline bytes with no
thumbnail cannot be re-described and is named; nothing is swapped until every face
has a vector of the new pack, and a partial run leaves the collection as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.engine import MODEL_VERSION, EngineSettings
from faceledger.engine import mediapipe_models as mm
from faceledger.engine.registry import MESH_MODEL_VERSION
from faceledger.errors import PackUnavailableError
from faceledger.service import create
from faceledger.service.core import Service
from faceledger.service.workers import EnginePool
from faceledger.settings import Settings

from ..conftest import data_path
from .conftest import principal

pytestmark = pytest.mark.skipif(not mm.available(), reason="MediaPipe files not installed (make venv)")
PHOTOS = [("Aaron_Peirsol", 1), ("Aaron_Peirsol", 2), ("Abdullah_Gul", 1)]


def run(svc, op: str, **params):  # type: ignore[no-untyped-def]
    return svc.dispatch(op, params, principal("admin"), {"request_id": op})


@pytest.fixture
def svc(tmp_path):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", score_normalization="off")
    settings.data_dir.mkdir()
    bucket = settings.data_dir / "buckets" / "photos"
    bucket.mkdir(parents=True)
    for name, n in PHOTOS + [("Abdullah_Gul", 2)]:
        (bucket / f"{name}_{n}.jpg").write_bytes(data_path("lfw_dev", name, f"{name}_{n:04d}.jpg").read_bytes())
    catalog, index = Service.open_store(settings)
    service = create(settings, catalog, index, EnginePool(EngineSettings()))
    yield service
    service.close()


def enrol(svc, cid: str, tags: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    run(svc, "CreateCollection", CollectionId=cid, Tags=tags or {})
    ids = {}
    for name, n in PHOTOS:  # from the bucket: the original stays where the service can find it
        out = run(svc, "IndexFaces", CollectionId=cid, ExternalImageId=f"{name}_{n}",
                  Image={"S3Object": {"Bucket": "photos", "Name": f"{name}_{n}.jpg"}})
        ids[(name, n)] = out["FaceRecords"][0]["Face"]["FaceId"]
    return ids


def test_a_face_without_its_image_is_named_and_nothing_swaps_until_it_is_gone(svc) -> None:  # type: ignore[no-untyped-def]
    ids = enrol(svc, "c")
    inline = run(svc, "IndexFaces", CollectionId="c", ExternalImageId="walk-in",  # bytes only: kept nowhere
                 Image={"Bytes": data_path("lfw_dev", "Al_Gore", "Al_Gore_0001.jpg").read_bytes()})
    lost = inline["FaceRecords"][0]["Face"]["FaceId"]
    before = svc.catalog.iter_vectors("c")
    out = run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION)
    assert not out["Swapped"] and out["Remaining"] == 1
    assert out["MustReEnroll"] == [{"FaceId": lost, "ExternalImageId": "walk-in",
                                    "Reason": "the enrolled image is not in any bucket (matched by SHA-256)"}]
    assert sorted(s["FaceId"] for s in out["Staged"]) == sorted(ids.values())
    assert {s["Source"] for s in out["Staged"]} == {f"original:{n}_{i}.jpg" for n, i in PHOTOS}
    # not half-migrated: still pinned to dlib, same vectors, searched with dlib's pack
    assert svc.catalog.get_collection("c")["model_version"] == MODEL_VERSION
    after = svc.catalog.iter_vectors("c")
    assert after[0] == before[0] and np.array_equal(after[1], before[1])
    probe = data_path("lfw_dev", "Abdullah_Gul", "Abdullah_Gul_0002.jpg").read_bytes()
    assert run(svc, "SearchFacesByImage", CollectionId="c", Image={"Bytes": probe})["FaceModelVersion"] == "1.1"

    run(svc, "DeleteFaces", CollectionId="c", FaceIds=[lost])
    done = run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION)
    assert done["Swapped"] and done["Staged"] == [] and done["Remaining"] == 0  # the staged rows were reused
    c = svc.catalog.get_collection("c")
    assert (c["model_version"], c["dim"], c["metric"], c["face_count"]) == (MESH_MODEL_VERSION, 128, "euclidean", 3)
    mesh = svc.packs.get(MESH_MODEL_VERSION)
    got_ids, got = svc.catalog.iter_vectors("c")
    for (name, n), fid in ids.items():
        photo = data_path("lfw_dev", name, f"{name}_{n:04d}.jpg").read_bytes()
        np.testing.assert_array_equal(got[got_ids.index(fid)], mesh.engines.analyze(photo).faces[0].descriptor)
    hit = run(svc, "SearchFacesByImage", CollectionId="c", Image={"Bytes": probe})
    assert hit["FaceModelVersion"] == "2.1" and [m["Face"]["FaceId"] for m in hit["FaceMatches"]] == [
        ids[("Abdullah_Gul", 1)]]
    assert hit["Faceledger"]["CalibrationVersion"].startswith(MESH_MODEL_VERSION + "/")
    (record,) = [r for r in svc.ledger.iter_all() if r["operation"] == "CollectionMigrated"]
    assert record["details"]["from_model_version"] == MODEL_VERSION
    assert record["details"]["model_version"] == MESH_MODEL_VERSION and record["details"]["sources"] == {"original": 3}
    # a search still holding the old pack's view is refused, never scored against the new vectors
    with pytest.raises(PackUnavailableError, match="migrated while this call ran"):
        svc.index.search("c", got[0], 3, expect=MODEL_VERSION)
    assert run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION)["Note"]


def test_batches_leave_the_collection_untouched_until_the_last(svc) -> None:  # type: ignore[no-untyped-def]
    enrol(svc, "c")
    before = svc.catalog.iter_vectors("c")[1]
    first = run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION, MaxFaces=1)
    assert len(first["Staged"]) == 1 and first["NextFaceId"] and not first["Swapped"]
    assert svc.catalog.get_collection("c")["model_version"] == MODEL_VERSION
    assert np.array_equal(svc.catalog.iter_vectors("c")[1], before)  # an interrupted run changed nothing
    after = first["NextFaceId"]
    while after:
        out = run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION, MaxFaces=1,
                  After=after)
        after = out["NextFaceId"]
    assert out["Swapped"] and svc.catalog.get_collection("c")["model_version"] == MESH_MODEL_VERSION


def test_thumbnails_are_a_source_only_when_asked(svc) -> None:  # type: ignore[no-untyped-def]
    run(svc, "CreateCollection", CollectionId="t", Tags={"faceledger:thumbnails": "true"})
    photo = data_path("lfw_dev", "Al_Gore", "Al_Gore_0002.jpg").read_bytes()
    run(svc, "IndexFaces", CollectionId="t", Image={"Bytes": photo}, ExternalImageId="gore")
    out = run(svc, "MigrateCollection", CollectionId="t", ModelVersion=MESH_MODEL_VERSION)
    assert not out["Swapped"] and out["MustReEnroll"][0]["ExternalImageId"] == "gore"
    out = run(svc, "MigrateCollection", CollectionId="t", ModelVersion=MESH_MODEL_VERSION, UseThumbnails=True)
    assert out["Swapped"] and [s["Source"] for s in out["Staged"]] == ["thumbnail"]


def test_a_pack_not_installed_is_refused_before_anything_is_staged(svc) -> None:  # type: ignore[no-untyped-def]
    enrol(svc, "c")
    with pytest.raises(PackUnavailableError, match="acme-9.*not installed"):
        run(svc, "MigrateCollection", CollectionId="c", ModelVersion="acme-9")
    assert svc.catalog.unstaged_faces("c", "acme-9", 10) and svc.catalog.get_collection("c")["model_version"] == MODEL_VERSION


def test_a_face_described_with_the_old_pack_while_the_swap_lands_is_not_enrolled(svc) -> None:  # type: ignore[no-untyped-def]
    ids = enrol(svc, "c")
    engines = svc.packs.default.engines
    plain = engines.analyze

    def analyze_while_migrating(data, **kw):  # type: ignore[no-untyped-def]
        out = plain(data, **kw)  # described with dlib's pack ...
        done = run(svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION)
        assert done["Swapped"]  # ... while the collection moved to the mesh pack
        return out

    engines.analyze = analyze_while_migrating  # type: ignore[method-assign]
    try:
        with pytest.raises(PackUnavailableError, match="migrated to .*mesh5.*nothing was enrolled"):
            run(svc, "IndexFaces", CollectionId="c",
                Image={"Bytes": data_path("lfw_dev", "Al_Gore", "Al_Gore_0001.jpg").read_bytes()})
    finally:
        engines.analyze = plain  # type: ignore[method-assign]
    assert sorted(svc.catalog.iter_vectors("c")[0]) == sorted(ids.values())
    assert svc.index.size("c") == 3


@pytest.mark.parametrize(("params", "why"), [
    ({"ModelVersion": MESH_MODEL_VERSION, "MaxFaces": "ten"}, "MaxFaces must be a whole number"),
    ({"ModelVersion": MESH_MODEL_VERSION, "MaxFaces": 0}, "MaxFaces must be a whole number"),
    ({"ModelVersion": MESH_MODEL_VERSION, "After": 7}, "After must be"),
    ({"ModelVersion": 2.1}, "ModelVersion"),
    ({}, "ModelVersion"),
])
def test_bad_migration_parameters_are_clear_errors(svc, params, why) -> None:  # type: ignore[no-untyped-def]
    from faceledger.errors import InvalidParameterError

    run(svc, "CreateCollection", CollectionId="c")
    with pytest.raises(InvalidParameterError, match=why):
        run(svc, "MigrateCollection", CollectionId="c", **params)


@pytest.fixture
def pg_svc(tmp_path, pg_url):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", score_normalization="off", store=pg_url)
    settings.data_dir.mkdir()
    bucket = settings.data_dir / "buckets" / "photos"
    bucket.mkdir(parents=True)
    for name, n in PHOTOS + [("Abdullah_Gul", 2)]:
        (bucket / f"{name}_{n}.jpg").write_bytes(data_path("lfw_dev", name, f"{name}_{n:04d}.jpg").read_bytes())
    catalog, index = Service.open_store(settings)  # PgVectorIndex on PostgreSQL
    service = create(settings, catalog, index, EnginePool(EngineSettings()))
    yield service
    service.close()


def test_on_postgresql_the_swap_lands_in_pgvector_and_searches_use_the_new_pack(pg_svc) -> None:  # type: ignore[no-untyped-def]
    from faceledger.store.pg_vectors import PgVectorIndex

    assert isinstance(pg_svc.index, PgVectorIndex)
    ids = enrol(pg_svc, "c")
    probe = {"S3Object": {"Bucket": "photos", "Name": "Abdullah_Gul_2.jpg"}}
    old = run(pg_svc, "SearchFacesByImage", CollectionId="c", Image=probe)["FaceMatches"][0]["Distance"]
    assert run(pg_svc, "MigrateCollection", CollectionId="c", ModelVersion=MESH_MODEL_VERSION)["Swapped"]
    with pytest.raises(PackUnavailableError, match="now holds"):  # the old pack's vectors are never compared
        pg_svc.index.search("c", np.zeros(128, np.float32), 1, expect=MODEL_VERSION)
    hit = run(pg_svc, "SearchFacesByImage", CollectionId="c", Image=probe)
    assert hit["FaceMatches"][0]["Face"]["FaceId"] == ids[("Abdullah_Gul", 1)]
    assert hit["FaceMatches"][0]["Distance"] != old  # measured between mesh-pack vectors now
