"""Rekognition Video's stored-video face jobs: StartFaceDetection/GetFaceDetection, StartFaceSearch/GetFaceSearch.

A Start* call checks the request, hashes the video and writes the job and its
ledger record in one catalog transaction; ``video_jobs.VideoJobs`` then runs
it in the background. Jobs are state entries (``video_job:<JobId>``, plus
``video_jobs:active``); Get* reads a job's state and its results file.

NotificationChannel is accepted and recorded but nothing is published (there is
no SNS here): clients poll Get*. This module must not decode video or run the
engine itself (``faceledger.video`` does), nor parse HTTP.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from ..errors import (
    AccessDeniedError,
    InvalidParameterError,
    InvalidS3ObjectError,
    LimitExceededError,
    ResourceNotFoundError,
    VideoTooLargeError,
)
from ..video import UnreadableVideo, VideoSettings, probe
from . import turns
from .collections import check_collection_id
from .core import Call, Service, Threshold
from .faces import collection_pack
from .images import bucket_object_path
from .search import _threshold_details
from .users import idempotent
from .video_jobs import ACTIVE, _job_key, file_sha256, jobs
from .video_leases import lease_name

KINDS = {"StartFaceDetection": "detection", "StartFaceSearch": "search"}
GETTER = {"detection": "GetFaceDetection", "search": "GetFaceSearch"}
NOT_DELIVERED = ("NotificationChannel is recorded but not delivered: faceledger has no SNS; "
                 "poll GetFaceDetection/GetFaceSearch.")


# -- inputs -------------------------------------------------------------------

def video_path(video: dict | None, buckets: dict[str, Path]) -> tuple[Path, dict]:
    """The local file behind ``Video.S3Object`` (a mapped bucket folder) and the S3Object itself."""
    if not isinstance(video, dict) or not isinstance(video.get("S3Object"), dict):
        raise InvalidParameterError("Video.S3Object (Bucket, Name) is required.")
    obj = video["S3Object"]
    bucket, name = obj.get("Bucket"), obj.get("Name")
    if not bucket or not name:
        raise InvalidParameterError("Video.S3Object needs Bucket and Name.")
    if not isinstance(bucket, str) or not isinstance(name, str) or "\x00" in bucket or "\x00" in name:
        raise InvalidParameterError("Video.S3Object.Bucket and .Name must be strings without NUL characters.")
    if obj.get("Version"):
        raise InvalidS3ObjectError("Bucket folders keep no object versions: omit Video.S3Object.Version.")
    return bucket_object_path(bucket, name, buckets), {"Bucket": bucket, "Name": name}


def _check_size(path: Path, obj: dict, settings: VideoSettings) -> int:
    size = path.stat().st_size
    if size > settings.max_bytes:
        raise VideoTooLargeError(
            f"s3://{obj['Bucket']}/{obj['Name']} is {size:,} bytes; this service's limit is "
            f"{settings.max_bytes:,} (FACELEDGER_VIDEO_MAX_BYTES).")
    try:
        info = probe(path)
    except UnreadableVideo:
        return size  # the job will fail with the reason; Rekognition also fails the job, not the call
    if info.duration_ms > settings.max_duration_s * 1000:
        raise VideoTooLargeError(
            f"The video lasts {info.duration_ms / 3.6e6:.1f} h; the limit is "
            f"{settings.max_duration_s / 3600:.1f} h.")
    return size


# -- Start* -------------------------------------------------------------------

def _start(svc: Service, call: Call, kind: str) -> dict:
    runner = jobs(svc)
    p = call.params
    path, obj = video_path(p.get("Video"), svc.buckets)
    cid: str | None = None
    threshold: Threshold | None = None
    purpose: str | None = None
    if kind == "search":
        cid = check_collection_id(p.get("CollectionId"))
        collection_pack(svc, call, svc.catalog.get_collection(cid))
        rule = svc.matching_rule(call, cid)  # halt, purpose, case: refusals are ledgered there
        purpose = rule.name
        threshold = svc.search_threshold(p.get("FaceMatchThreshold"), svc.index.size(cid), rule)
    size = _check_size(path, obj, runner.settings)
    digest = file_sha256(path)
    created: list[str] = []

    def work(tx: Any) -> dict:
        active = list(svc.catalog.get_state(ACTIVE) or [])
        if len(active) >= runner.settings.max_active_jobs:
            raise LimitExceededError(
                f"{len(active)} video jobs are already queued or running; wait for one to finish.")
        job_id = secrets.token_hex(32)
        job = {
            "job_id": job_id, "kind": kind, "status": "IN_PROGRESS", "path": str(path),
            "video": {"S3Object": obj}, "sha256": digest, "size": size,
            "job_tag": p.get("JobTag"), "collection_id": cid,
            "threshold_requested": None if threshold is None else threshold.requested,
            "face_attributes": p.get("FaceAttributes") or "DEFAULT",
            "notification_channel": p.get("NotificationChannel"),
            "principal": call.principal.access_key_id, "role": call.principal.role,
            "purpose": call.ctx.purpose, "case": call.ctx.case, "request_id": call.ctx.request_id,
            "rule": purpose,
            "created_at": call.at, "resumes": 0, "sample_fps": runner.settings.sample_fps,
        }
        svc.catalog.set_state(tx, _job_key(job_id), job)
        svc.catalog.set_state(tx, ACTIVE, [*active, job_id])
        # this process runs it: the lease is claimed with the job, so no other process adopts it meanwhile
        svc.catalog.claim_lease(tx, lease_name(job_id), turns.owner(), time.time(), runner.settings.lease_s)
        details: dict = {"job_id": job_id, "video_sha256": digest, "video_bytes": size,
                         "video": f"s3://{obj['Bucket']}/{obj['Name']}", "job_tag": p.get("JobTag"),
                         "sample_fps": runner.settings.sample_fps}
        if threshold is not None:
            details.update(_threshold_details(threshold))
        if p.get("NotificationChannel"):
            details["notification"] = "not delivered (no SNS)"
        svc.record(tx, call, cid, details)
        created.append(job_id)
        return {"JobId": job_id}

    out = idempotent(svc, call, cid, work)
    if created:
        runner.submit(created[0])
    return out


def start_face_detection(svc: Service, call: Call) -> dict:
    return _start(svc, call, "detection")


def start_face_search(svc: Service, call: Call) -> dict:
    return _start(svc, call, "search")


# -- Get* ---------------------------------------------------------------------

def _load_job(svc: Service, call: Call, kind: str) -> dict:
    job_id = call.params.get("JobId")
    if not isinstance(job_id, str) or not job_id:
        raise InvalidParameterError("JobId is required.")
    job = svc.catalog.get_state(_job_key(job_id))
    if not isinstance(job, dict):
        raise ResourceNotFoundError(f"There is no video job {job_id}.")
    if job["kind"] != kind:
        raise ResourceNotFoundError(f"Job {job_id} is a face {job['kind']} job; use {GETTER[job['kind']]}.")
    if call.principal.role != "admin" and call.principal.access_key_id != job["principal"]:
        raise AccessDeniedError(f"Job {job_id} was started by another key; only it or an admin may read it.")
    return job


def _envelope(svc: Service, job: dict) -> dict:
    runner = jobs(svc)
    out: dict = {"JobStatus": job["status"], "JobId": job["job_id"], "Video": job["video"]}
    if job.get("status_message"):
        out["StatusMessage"] = job["status_message"]
    if job.get("metadata"):
        out["VideoMetadata"] = job["metadata"]
    if job.get("job_tag"):
        out["JobTag"] = job["job_tag"]
    progress, frames = runner.progress(job)
    extra: dict = {"Progress": progress, "FramesAnalysed": frames, "SampleRateFps": job.get("sample_fps"),
                   "VideoSha256": job["sha256"]}
    if job.get("notification_channel"):
        extra["Notification"] = NOT_DELIVERED
    if job.get("threshold"):
        extra.update(job["threshold"])
    if job.get("search_id"):
        extra["SearchId"] = job["search_id"]
    out["Faceledger"] = {k: v for k, v in extra.items() if v is not None}
    return out


def _page(svc: Service, call: Call, job: dict, items: list) -> tuple[list, str | None]:
    limit = int(call.params.get("MaxResults") or 1000)
    if not 1 <= limit <= 1000:
        raise InvalidParameterError("MaxResults must be between 1 and 1000.")
    scope = f"{job['job_id']}:{call.params.get('SortBy') or ''}"
    start = int(svc.pages.read(call.params.get("NextToken"), call.operation, scope) or 0)
    chunk = items[start:start + limit]
    nxt = svc.pages.make(call.operation, scope, str(start + limit)) if start + limit < len(items) else None
    return chunk, nxt


def get_face_detection(svc: Service, call: Call) -> dict:
    job = _load_job(svc, call, "detection")
    out = _envelope(svc, job)
    out["Faces"] = []  # list members are always present (docs/operations.md), empty until the job succeeds
    if job["status"] == "SUCCEEDED":
        faces = jobs(svc).results(job["job_id"])["Faces"]
        out["Faces"], token = _page(svc, call, job, faces)
        if token:
            out["NextToken"] = token
    return out


def get_face_search(svc: Service, call: Call) -> dict:
    job = _load_job(svc, call, "search")
    out = _envelope(svc, job)
    out["Persons"] = []
    if job["status"] == "SUCCEEDED":
        persons = list(jobs(svc).results(job["job_id"])["Persons"])
        if (call.params.get("SortBy") or "TIMESTAMP") == "INDEX":
            persons.sort(key=lambda m: (m["Person"]["Index"], m["Timestamp"]))
        out["Persons"], token = _page(svc, call, job, persons)
        if token:
            out["NextToken"] = token
    return out


# -- the background jobs --------------------------------------------------------

