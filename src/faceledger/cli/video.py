"""``faceledger video detect`` (local engine, no service) and ``faceledger video search`` (through the API).

``video search`` starts a StartFaceSearch job on a running service and polls
it, like any SDK client. The service reads videos from bucket folders: give
``s3://bucket/key`` for a mapped bucket, or a local FILE, which is copied into
the service's ``uploads`` bucket (``<data dir>/buckets/uploads``) first, so a
local FILE works only with a service on this machine and this data directory.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import InvalidParameterError
from ..settings import Settings
from ..store.perms import copy_private
from .client import call, client_options, rekognition
from .faces_local import make_engine, with_engine_options
from .output import emit, handle_errors

UPLOADS_BUCKET = "uploads"


@click.group()
def video() -> None:
    """Faces in stored video: local detection, and face search jobs on the service."""


def _progress_bar(quiet: bool, total: float = 100.0) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=quiet, unit="%", bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}]")


@video.command("detect")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@with_engine_options
@click.option("--fps", type=click.FloatRange(0.1, 60), default=None, help="Frames analysed per second of video.")
@click.option("--track", is_flag=True, help="Also group faces into people (adds descriptors; slower).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (GetFaceDetection's shape).")
@handle_errors
def detect_cmd(file: str, detector: str, landmarker: str, landmarks68: bool, min_face: float, fps: float | None, track: bool,
               quiet: bool, as_json: bool) -> None:
    """Find faces in a local video FILE with the engine, frame by frame, without a service."""
    from dataclasses import replace

    from ..service.workers import _analyze_pixels_with
    from ..video import UnreadableVideo, VideoSettings, analyse_video

    settings = VideoSettings.from_env()
    if fps:
        settings = replace(settings, sample_fps=fps)
    engine = make_engine(detector, landmarks68, min_face, landmarker)

    def submit(pixels: np.ndarray) -> Future:
        done: Future = Future()
        done.set_result(_analyze_pixels_with(engine, pixels, track, None, settings.cnn_fallback))
        return done

    with _progress_bar(quiet) as bar:
        def progress(percent: float, _frames: int) -> None:
            bar.update(max(0.0, percent - bar.n))

        try:
            result = analyse_video(file, settings, submit, track=track, all_attributes=True, progress=progress)
        except UnreadableVideo as exc:
            raise InvalidParameterError(str(exc)) from exc
        bar.update(100.0 - bar.n)
    faces = [{"Timestamp": a.ms, "Face": a.detail, **({"PersonIndex": a.index} if track else {})}
             for a in result.appearances]
    out = {"VideoMetadata": result.info.metadata(), "Faces": faces, "FramesAnalysed": result.frames_analysed,
           "SampleRateFps": settings.sample_fps, "Seconds": round(result.seconds, 3),
           "model_version": engine.model_version}
    if track:
        out["Persons"] = len(result.persons)

    def text(o: dict) -> str:
        m = o["VideoMetadata"]
        lines = [f"{file}: {m['FrameWidth']}x{m['FrameHeight']} {m['Codec']}, {m['DurationMillis'] / 1000:.1f} s; "
                 f"{o['FramesAnalysed']} frame(s) analysed at {o['SampleRateFps']:g} fps, "
                 f"{len(o['Faces'])} face(s)" + (f", {o['Persons']} person(s)" if "Persons" in o else "")]
        for f in o["Faces"]:
            b = f["Face"]["BoundingBox"]
            who = f" person {f['PersonIndex']}" if "PersonIndex" in f else ""
            lines.append(f"  {f['Timestamp'] / 1000:7.2f} s{who}  box=({b['Left']:.2f},{b['Top']:.2f} "
                         f"{b['Width']:.2f}x{b['Height']:.2f}) conf={f['Face']['Confidence']:.1f}")
        return "\n".join(lines)

    emit(out, as_json, text)


def _s3_object(target: str) -> dict:
    """``s3://bucket/key`` as is; a local file copied into the service's uploads bucket."""
    if target.startswith("s3://"):
        bucket, _, key = target[5:].partition("/")
        if not bucket or not key:
            raise InvalidParameterError("Give s3://BUCKET/KEY or a local video file.")
        return {"Bucket": bucket, "Name": key}
    path = Path(target)
    if not path.is_file():
        raise InvalidParameterError(f"{target} is not a file (or give s3://BUCKET/KEY).")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    name = f"{digest.hexdigest()[:16]}-{path.name}"
    dest = Settings.from_env().data_dir / "buckets" / UPLOADS_BUCKET / name
    if not dest.exists():  # into the data directory: private like the rest of it
        copy_private(path, dest)
    return {"Bucket": UPLOADS_BUCKET, "Name": name}


@video.command("search")
@click.argument("collection_id")
@click.argument("target")
@click.option("--threshold", type=click.FloatRange(0, 100), default=None,
              help="FaceMatchThreshold (raised to the calibrated floor if lower).")
@click.option("--purpose", default=None, help="Why this search is made (X-Faceledger-Purpose).")
@click.option("--case", default=None, help="Case reference (X-Faceledger-Case).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@client_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (GetFaceSearch's shape, all pages).")
@handle_errors
def search_cmd(collection_id: str, target: str, threshold: float | None, purpose: str | None, case: str | None,
               quiet: bool, endpoint: str | None, profile_file: str | None, as_json: bool) -> None:
    """Search COLLECTION_ID for the people in TARGET (a local video file or s3://bucket/key)."""
    import json

    headers = {k: v for k, v in (("X-Faceledger-Purpose", purpose), ("X-Faceledger-Case", case)) if v}
    rek = rekognition(endpoint, profile_file, headers)
    extra: dict = {}

    def keep_extra(http_response, **_):  # type: ignore[no-untyped-def]
        try:
            extra.update(json.loads(http_response.content).get("Faceledger", {}))
        except ValueError:
            pass

    rek.meta.events.register("after-call.rekognition.GetFaceSearch", keep_extra)
    job = call(rek.start_face_search, Video={"S3Object": _s3_object(target)}, CollectionId=collection_id,
               FaceMatchThreshold=threshold)
    with _progress_bar(quiet) as bar:
        while True:
            out = call(rek.get_face_search, JobId=job["JobId"], MaxResults=1000)
            bar.update(max(0.0, float(extra.get("Progress", 0.0)) - bar.n))
            if out["JobStatus"] != "IN_PROGRESS":
                break
            time.sleep(0.5)
    persons = list(out.get("Persons", []))
    while out.get("NextToken"):
        out = call(rek.get_face_search, JobId=job["JobId"], MaxResults=1000, NextToken=out["NextToken"])
        persons += out.get("Persons", [])
    out = {**out, "Persons": persons, "Faceledger": extra}
    out.pop("NextToken", None)
    if out["JobStatus"] == "FAILED":
        raise InvalidParameterError(f"The video job failed: {out.get('StatusMessage', 'no reason given')}")

    def text(o: dict) -> str:
        f = o["Faceledger"]
        people: dict[int, dict] = {}
        for p in o["Persons"]:
            info = people.setdefault(p["Person"]["Index"], {"times": [], "matches": p["FaceMatches"]})
            info["times"].append(p["Timestamp"])
        lines = [f"job {o['JobId']}: {len(people)} person(s) in {len(o['Persons'])} appearance(s); threshold "
                 f"{f.get('ThresholdApplied', '?')}, gallery {f.get('GallerySize', '?')}. "
                 "Candidates are leads for human review, not identifications."]
        for idx, info in sorted(people.items()):
            span = f"{min(info['times']) / 1000:.1f}-{max(info['times']) / 1000:.1f} s"
            lines.append(f"  person {idx} ({span}, {len(info['times'])} sample(s)):")
            for m in info["matches"]:
                lines.append(f"    {m['Similarity']:6.2f}  {m['Face']['FaceId']}  {m['Face'].get('ExternalImageId', '')}")
            if not info["matches"]:
                lines.append("    no candidate at or above the threshold")
        return "\n".join(lines)

    emit(out, as_json, text)
