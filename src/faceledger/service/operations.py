"""The operation table: Rekognition operation name -> service function."""

from __future__ import annotations

from . import admin, collections, faces, retention, review, search, users, video

OPERATIONS = {
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
FACELEDGER_OPERATIONS = {
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
OPERATIONS.update(FACELEDGER_OPERATIONS)
