"""Rekognition Video face jobs through real boto3 against a real server: start, poll, page, fail, restart.

The clip (640x360, 10 s) shows Lin-Manuel Miranda and Alex Lacamoire, whose
reference stills are enrolled. Alex's best sampled face in the clip (head
turned and tilted down) scores about Similarity 34 against his still: under the
default policy's floor for a 2-face gallery (47), so this server runs the
operator policy FACELEDGER_MAX_EXPECTED_FALSE=0.02 (floor about 29) and the
test checks that the floor it applied is the one the response reports.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from ..conftest import data_path
from ..video.media import faststart_copy, flat_video, truncated
from .conftest import Server, start_server

CLIP = "short_hamilton_clip.mp4"


def wait(get, job_id: str, timeout: float = 90.0, **kw: object) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = get(JobId=job_id, **kw)
        if out["JobStatus"] != "IN_PROGRESS":
            return dict(out)
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still IN_PROGRESS after {timeout} s")


def env_for(videos: Path, gen: Path) -> dict:
    return {"FACELEDGER_BUCKETS": f"clips={videos},gen={gen}", "FACELEDGER_MAX_EXPECTED_FALSE": "0.02"}


@pytest.fixture(scope="module")
def media(tmp_path_factory):  # type: ignore[no-untyped-def]
    videos = data_path("videos")
    gen = tmp_path_factory.mktemp("gen")
    flat_video(gen / "no_faces.mp4")
    truncated(faststart_copy(videos / CLIP, gen / "faststart.mp4"), gen / "truncated.mp4")
    truncated(videos / CLIP, gen / "truncated_no_index.mp4")
    (gen / "notes.mp4").write_text("this is not a video\n")
    return videos, gen


@pytest.fixture(scope="module")
def srv(media, tmp_path_factory):  # type: ignore[no-untyped-def]
    videos, gen = media
    server = start_server(tmp_path_factory.mktemp("vsvc") / "data", workers=2, extra_env=env_for(videos, gen))
    rek = server.client()
    rek.create_collection(CollectionId="cast")
    for still in sorted((videos / "reference_faces").glob("*.png")):
        rek.index_faces(CollectionId="cast", Image={"Bytes": still.read_bytes()}, ExternalImageId=still.stem,
                        MaxFaces=1)
    yield server
    server.stop()


def clip(name: str = CLIP, bucket: str = "clips") -> dict:
    return {"S3Object": {"Bucket": bucket, "Name": name}}


def test_face_search_finds_both_people(srv: Server) -> None:
    rek = srv.client()
    job = rek.start_face_search(Video=clip(), CollectionId="cast", FaceMatchThreshold=10.0, JobTag="hamilton",
                                ClientRequestToken="search-1",
                                NotificationChannel={"SNSTopicArn": "arn:aws:sns:us-east-1:000000000000:t",
                                                     "RoleArn": "arn:aws:iam::000000000000:role/r"})
    # same token, same parameters: the same job; other parameters: refused
    again = rek.start_face_search(Video=clip(), CollectionId="cast", FaceMatchThreshold=10.0, JobTag="hamilton",
                                  ClientRequestToken="search-1",
                                  NotificationChannel={"SNSTopicArn": "arn:aws:sns:us-east-1:000000000000:t",
                                                       "RoleArn": "arn:aws:iam::000000000000:role/r"})
    assert again["JobId"] == job["JobId"]
    with pytest.raises(rek.exceptions.IdempotentParameterMismatchException):
        rek.start_face_search(Video=clip(), CollectionId="cast", FaceMatchThreshold=90.0,
                              ClientRequestToken="search-1")
    done = wait(rek.get_face_search, job["JobId"], MaxResults=5)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    meta = done["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"], meta["Codec"]) == (640, 360, "h264")
    assert 9000 <= meta["DurationMillis"] <= 11000 and done["JobTag"] == "hamilton"

    persons, pages, token = [], 0, None
    while True:
        kw = {"NextToken": token} if token else {}
        page = rek.get_face_search(JobId=job["JobId"], MaxResults=5, **kw)
        persons += page["Persons"]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages > 1 and persons == sorted(persons, key=lambda p: (p["Timestamp"], p["Person"]["Index"]))
    found: dict[str, list[int]] = {}
    for p in persons:
        for m in p["FaceMatches"]:
            found.setdefault(m["Face"]["ExternalImageId"], []).append(p["Timestamp"])
    assert set(found) == {"lin-manuel-miranda", "alex-lacamoire"}, found
    # Alex is on screen around 1.5-2.3 s, Lin-Manuel from about 3.7 s to 7.8 s
    assert all(1400 <= t <= 2500 for t in found["alex-lacamoire"]), found["alex-lacamoire"]
    assert any(3500 <= t <= 8000 for t in found["lin-manuel-miranda"]), found["lin-manuel-miranda"]
    # one person, one Index: every appearance of a person carries that person's matches
    by_index: dict[int, list[dict]] = {}
    for p in persons:
        by_index.setdefault(p["Person"]["Index"], []).append(p)
    for appearances in by_index.values():
        assert len({json.dumps(a["FaceMatches"], sort_keys=True) for a in appearances}) == 1
    assert len(by_index) < len(persons) / 3  # tracked, not one person per frame

    # INDEX order, and the calibrated floor in the extra member
    by_idx = rek.get_face_search(JobId=job["JobId"], SortBy="INDEX")["Persons"]
    assert [p["Person"]["Index"] for p in by_idx] == sorted(p["Person"]["Index"] for p in by_idx)
    raw = _raw_extra(srv, "GetFaceSearch", {"JobId": job["JobId"], "MaxResults": 1})
    assert raw["Progress"] == 100.0 and raw["ThresholdRaised"] is True and raw["GallerySize"] == 2
    assert raw["ThresholdApplied"] > 10.0 and "not delivered" in raw["Notification"]

    audit = srv.cli("audit", "show", "--operation", "FaceSearchCompleted", "--json")
    records = json.loads(audit.stdout)["records"]
    assert any(r["details"]["job_id"] == job["JobId"] and r["details"]["status"] == "SUCCEEDED"
               and r["principal"] == srv.key for r in records), audit.stdout

    # the job's candidates are leads a reviewer can confirm, naming the completion record
    reviewer = json.loads(srv.cli("keys", "create", "--role", "reviewer", "--json", "--data",
                                  str(srv.data_dir), check=True).stdout)
    candidate = next(m["Face"]["FaceId"] for p in persons for m in p["FaceMatches"])
    decided = srv.cli("review", "confirm", str(raw["SearchId"]), candidate, "--reason", "same face on stage",
                      "--json", key=(reviewer["AccessKeyId"], reviewer["SecretAccessKey"]))
    assert decided.returncode == 0, decided.stderr
    assert json.loads(decided.stdout)["Candidates"][0]["Status"] in ("CONFIRMED", "PENDING")


def _raw_extra(srv: Server, op: str, params: dict) -> dict:
    extra: dict = {}
    rek = srv.client()

    def keep(http_response, **_):  # type: ignore[no-untyped-def]
        extra.update(json.loads(http_response.content).get("Faceledger", {}))

    rek.meta.events.register(f"after-call.rekognition.{op}", keep)
    getattr(rek, {"GetFaceSearch": "get_face_search", "GetFaceDetection": "get_face_detection"}[op])(**params)
    return extra


def test_face_detection_and_bad_inputs(srv: Server) -> None:
    rek = srv.client()
    empty = rek.start_face_detection(Video=clip("no_faces.mp4", "gen"))
    cut = rek.start_face_detection(Video=clip("truncated.mp4", "gen"))
    cut_no_index = rek.start_face_detection(Video=clip("truncated_no_index.mp4", "gen"))
    text = rek.start_face_search(Video=clip("notes.mp4", "gen"), CollectionId="cast")
    out = wait(rek.get_face_detection, empty["JobId"])
    assert out["JobStatus"] == "SUCCEEDED" and out["Faces"] == [] and out["VideoMetadata"]["FrameWidth"] == 160
    out = wait(rek.get_face_detection, cut["JobId"])
    assert out["JobStatus"] == "FAILED" and "truncated" in out["StatusMessage"]
    out = wait(rek.get_face_detection, cut_no_index["JobId"])
    assert out["JobStatus"] == "FAILED" and "not a video" in out["StatusMessage"]
    out = wait(rek.get_face_search, text["JobId"])
    assert out["JobStatus"] == "FAILED" and "not a video" in out["StatusMessage"]

    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.start_face_detection(Video=clip("missing.mp4"))
    with pytest.raises(rek.exceptions.InvalidS3ObjectException):
        rek.start_face_detection(Video=clip(CLIP, "nobucket"))
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.get_face_detection(JobId="0" * 64)
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.get_face_search(JobId=empty["JobId"])  # a detection job
    with pytest.raises(rek.exceptions.ResourceNotFoundException):
        rek.start_face_search(Video=clip(), CollectionId="nope")


def test_restart_during_a_job(media, tmp_path) -> None:  # type: ignore[no-untyped-def]
    videos, gen = media
    data = tmp_path / "data"
    env = env_for(videos, gen)
    first = start_server(data, workers=1, extra_env=env)
    rek = first.client()
    shutil.copy(videos / CLIP, gen / "restart.mp4")
    job = rek.start_face_detection(Video=clip("restart.mp4", "gen"), FaceAttributes="ALL")["JobId"]
    deadline = time.time() + 60
    while time.time() < deadline:
        extra = _raw_extra(first, "GetFaceDetection", {"JobId": job})
        if extra.get("FramesAnalysed", 0) >= 2:
            break
        time.sleep(0.1)
    assert rek.get_face_detection(JobId=job)["JobStatus"] == "IN_PROGRESS"
    first.crash()
    again = start_server(data, workers=1, extra_env=env)
    try:
        out = wait(again.client().get_face_detection, job)
        assert out["JobStatus"] == "SUCCEEDED", out.get("StatusMessage")
        assert out["Faces"] and all("Pose" in f["Face"] and "Timestamp" in f for f in out["Faces"])
        verify = again.cli("audit", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr
    finally:
        again.stop()


def test_cli_video_search_uploads_a_local_file(srv: Server, media) -> None:  # type: ignore[no-untyped-def]
    _, gen = media
    run = srv.cli("video", "search", "cast", str(gen / "no_faces.mp4"), "--quiet", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["JobStatus"] == "SUCCEEDED" and out["Persons"] == [] and out["Video"]["S3Object"]["Bucket"] == "uploads"
    assert out["Faceledger"]["GallerySize"] == 2
    bad = srv.cli("video", "search", "cast", str(gen / "notes.mp4"), "--quiet")
    assert bad.returncode != 0 and "not a video" in bad.stderr
