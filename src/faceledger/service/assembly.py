"""Where the service is assembled: the operation table, video jobs and the retention sweeper.

``core`` holds the Service object and the rules every operation shares; the
operation modules (collections, faces, search, users, video, retention,
review, admin) import ``core``. This module is the one place that imports
them all and hands their table to the Service, so the import arrows run one
way: assembly -> operations -> core. Nothing imports this module but the
package's entry points (``faceledger.service.open_service`` and ``create``).
"""

from __future__ import annotations

from ..settings import Settings
from ..store.protocols import CatalogStore, VectorStore
from . import admin, collections, faces, retention, review, search, users, video, video_jobs
from .core import Operation, Service
from .workers import EnginePool

OPERATIONS: dict[str, Operation] = {
    "CreateCollection": collections.create_collection,
    "DescribeCollection": collections.describe_collection,
    "ListCollections": collections.list_collections,
    "DeleteCollection": collections.delete_collection,
    "TagResource": collections.tag_resource,
    "UntagResource": collections.untag_resource,
    "ListTagsForResource": collections.list_tags,
    "DetectFaces": faces.detect_faces,
    "IndexFaces": faces.index_faces,
    "ListFaces": faces.list_faces,
    "DeleteFaces": faces.delete_faces,
    "CompareFaces": search.compare_faces,
    "SearchFaces": search.search_faces,
    "SearchFacesByImage": search.search_faces_by_image,
    "CreateUser": users.create_user,
    "DeleteUser": users.delete_user,
    "ListUsers": users.list_users,
    "AssociateFaces": users.associate_faces,
    "DisassociateFaces": users.disassociate_faces,
    "SearchUsers": users.search_users,
    "SearchUsersByImage": users.search_users_by_image,
    "StartFaceDetection": video.start_face_detection,
    "GetFaceDetection": video.get_face_detection,
    "StartFaceSearch": video.start_face_search,
    "GetFaceSearch": video.get_face_search,
}

# faceledger's own operations (X-Amz-Target: FaceledgerService.<Op>)
FACELEDGER_OPERATIONS: dict[str, Operation] = {
    "Halt": admin.halt,
    "Resume": admin.resume,
    "GetStatus": admin.get_status,
    "CreateCheckpoint": admin.create_checkpoint,
    "CreateConsent": retention.create_consent,
    "ListConsents": retention.list_consents,
    "WithdrawConsent": retention.withdraw_consent,
    "RetentionSweep": retention.sweep,
    "RetentionSchedule": retention.schedule,
    "ReviewCandidate": review.review_candidate,
    "GetReview": review.get_review,
}


def create(settings: Settings, catalog: CatalogStore, index: VectorStore, engines: EnginePool, **kw: object) -> Service:
    """A Service with every operation and its video jobs (which resume any a stopped service left)."""
    svc = Service(settings, catalog, index, engines, operations={**OPERATIONS, **FACELEDGER_OPERATIONS},
                  own_operations=FACELEDGER_OPERATIONS, **kw)  # type: ignore[arg-type]
    svc.video = video_jobs.VideoJobs(svc)
    return svc


def open_service(settings: Settings, *, engines: EnginePool | None = None) -> Service:
    """Open the data directory, start the engine workers, finish cut-short work, start the sweeper.

    Whatever fails on the way (a bad setting or policy, a corrupt model file, a
    damaged catalog) leaves no worker process or open database behind it.
    """
    catalog, index = Service.open_store(settings)
    own_engines = engines is None
    try:
        if engines is None:
            engines = Service.open_engines(settings)
    except BaseException:
        catalog.close()
        raise
    try:
        svc = create(settings, catalog, index, engines)
    except BaseException:
        if own_engines:
            engines.close()
        catalog.close()
        raise
    try:
        retention.finish_withdrawals(svc)  # before the first request: a withdrawn consent's faces never match
    except BaseException:
        if svc.video is not None:
            svc.video.close()
        if own_engines:
            engines.close()
        catalog.close()
        raise
    svc.sweeper = retention.Sweeper(svc, settings.retention_sweep_s)
    svc.sweeper.start()
    return svc
