"""The background runner of stored-video jobs: analyse, search, finish, resume after a restart.

``VideoJobs`` takes the jobs that ``service/video.py``'s Start* operations
wrote, analyses each in a background thread, frame by frame through the
shared engine pool, and ends it SUCCEEDED or FAILED with a second ledger
record ("FaceDetectionCompleted" / "FaceSearchCompleted", attributed to the
key that started it). Results are a JSON file per job under
``<data_dir>/video``. Each job is leased to one process (service/video_leases.py):
several API processes on one store never run a job twice, and a job whose
process died is taken over by another (or by the next start) once its lease
has expired, at once when the holder is known dead. A detection job resumes
after its last checkpointed frame (written every third of the lease, and at a
graceful stop); a search job restarts from the beginning (its tracker state
is not checkpointed). One that keeps dying with the service is marked FAILED,
never left IN_PROGRESS. This module must not decode video or run the engine
itself (``faceledger.video`` does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    FaceledgerError,
    HaltedError,
)
from ..store.perms import make_private_dir
from ..video import UnreadableVideo, VideoSettings, analyse_video
from ..video.analysis import Checkpoint, Interrupted, VideoAnalysis
from . import turns
from .context import Principal, RequestContext
from .core import Call, Service, Threshold
from .faces import collection_pack
from .packs import Pack
from .search import _threshold_details, scoring_details, scoring_report, search_vector
from .video_leases import JobLeases, lease_name

log = logging.getLogger("faceledger.video")

ACTIVE = "video_jobs:active"
UPLOADS_BUCKET = "uploads"
COMPLETED = {"detection": "FaceDetectionCompleted", "search": "FaceSearchCompleted"}


def _job_key(job_id: str) -> str:
    return f"video_job:{job_id}"


class LeaseLost(Exception):
    """Another process took this job over (our lease lapsed): stop without writing."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class VideoJobs:
    """A bounded set of worker threads running video jobs, one video at a time per thread."""

    def __init__(self, svc: Service, settings: VideoSettings | None = None) -> None:
        self.svc = svc
        self.settings = settings or VideoSettings.from_env()
        self.folder = Path(svc.settings.data_dir) / "video"
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._live: dict[str, tuple[float, int]] = {}
        self._running: dict[str, VideoAnalysis] = {}
        self._cache: OrderedDict[str, dict] = OrderedDict()
        uploads = Path(svc.settings.data_dir) / "buckets" / UPLOADS_BUCKET
        make_private_dir(uploads)  # where `faceledger video search FILE` puts local files
        svc.buckets.setdefault(UPLOADS_BUCKET, uploads)
        self.leases = JobLeases(svc, self.settings.lease_s, self._tick)
        self._adopt()
        self.leases.start()

    # lifecycle
    def _ensure_threads(self) -> None:
        with self._lock:
            if self._threads or self._stop.is_set():
                return
            for i in range(max(1, self.settings.job_workers)):
                t = threading.Thread(target=self._loop, name=f"faceledger-video-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def submit(self, job_id: str) -> None:
        """Run a job Start* created (its lease was claimed in the same transaction)."""
        self.leases.hold(job_id)
        self._enqueue(job_id)

    def _enqueue(self, job_id: str) -> None:
        self._queue.put(job_id)
        self._ensure_threads()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop after the frames in flight; a job cut short stays IN_PROGRESS, its lease given up, so another
        process (or the next start) resumes it at once."""
        self._stop.set()
        self.leases.close()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for job_id in self.leases.held():  # queued here, never started: handed back as stopped gracefully
            with self._lock:
                if job_id in self._running:
                    continue  # a thread that did not stop in time still owns it; its lease lapses
            job = self.svc.catalog.get_state(_job_key(job_id))
            if isinstance(job, dict) and job["status"] == "IN_PROGRESS":
                job["stopped_gracefully"] = True
                with self.svc.catalog.transaction() as tx:
                    self.svc.catalog.set_state(tx, _job_key(job_id), job)
            self.leases.release(job_id)

    def _tick(self) -> None:
        """Every third of the lease (after renewing ours): checkpoint running jobs, adopt orphans."""
        for job_id in list(self._running):
            self._checkpoint(job_id)
        if not self._stop.is_set():
            self._adopt()

    def _adopt(self) -> None:
        """Jobs left IN_PROGRESS by a stopped, crashed or vanished process: resume them, or fail crash-loopers."""
        for job_id in list(self.svc.catalog.get_state(ACTIVE) or []):
            if self.leases.holds(job_id):
                continue
            job = self.svc.catalog.get_state(_job_key(job_id))
            if not isinstance(job, dict) or job["status"] != "IN_PROGRESS":
                with self.svc.catalog.transaction() as tx:
                    self._deactivate(tx, job_id)
                continue
            if not self.leases.take(job_id):  # another live process holds it
                continue
            job = self.svc.catalog.get_state(_job_key(job_id))  # again, now that it is ours
            if not isinstance(job, dict) or job["status"] != "IN_PROGRESS":
                self.leases.release(job_id)
                continue
            graceful = bool(job.pop("stopped_gracefully", False))
            if not graceful:
                job["resumes"] = int(job.get("resumes", 0)) + 1
            if job["resumes"] > self.settings.max_resumes:
                try:
                    self._finish(job, "FAILED", None,
                                 f"The service stopped {job['resumes']} times while analysing this video "
                                 "(it may crash the decoder or run out of memory); the job was abandoned.")
                except LeaseLost:
                    pass
                continue
            saved = self._saved_checkpoint(job)
            job["resumed_after_frame"] = saved.frames_analysed if saved is not None else 0
            job["status_message"] = (
                f"Resumed after a service restart after frame {saved.frames_analysed} ({saved.last_ms} ms)."
                if saved is not None else
                "Resumed after a service restart: the analysis restarted from the beginning.")
            with self.svc.catalog.transaction() as tx:
                self.svc.catalog.set_state(tx, _job_key(job_id), job)
            self._enqueue(job_id)

    # checkpoints (detection jobs): how far the analysis got, in a file any process can read
    def _checkpoint_path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.checkpoint.json"

    def _checkpoint(self, job_id: str) -> None:
        job = self.svc.catalog.get_state(_job_key(job_id))
        if not isinstance(job, dict) or job["kind"] != "detection":
            return
        with self._lock:  # not after _finish removed the job from _running (and its checkpoint file)
            analysis = self._running.get(job_id)
            if analysis is None:
                return
            doc = {"sha256": job["sha256"], **Checkpoint.of(analysis).to_json()}
            self.folder.mkdir(parents=True, exist_ok=True)
            _write_json(self._checkpoint_path(job_id), doc)

    def _saved_checkpoint(self, job: dict) -> Checkpoint | None:
        if job["kind"] != "detection":
            return None
        try:
            doc = json.loads(self._checkpoint_path(job["job_id"]).read_text())
        except (OSError, ValueError):
            return None
        if doc.get("sha256") != job["sha256"]:
            return None
        try:
            return Checkpoint.from_json(doc)
        except (KeyError, TypeError, ValueError):
            return None

    # progress and results
    def progress(self, job: dict) -> tuple[float, int]:
        if job["status"] != "IN_PROGRESS":
            return (100.0 if job["status"] == "SUCCEEDED" else float(job.get("progress", 0.0)),
                    int(job.get("frames_analysed", 0)))
        return self._live.get(job["job_id"], (0.0, 0))

    def _results_path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def results(self, job_id: str) -> dict:
        with self._lock:
            if job_id in self._cache:
                self._cache.move_to_end(job_id)
                return self._cache[job_id]
        data = json.loads(self._results_path(job_id).read_text())
        with self._lock:
            self._cache[job_id] = data
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return data

    # the work
    def _loop(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception:  # never let one job kill the worker
                log.exception("video job %s: unexpected error", job_id)

    def _run(self, job_id: str) -> None:
        if not self.leases.holds(job_id):
            return
        job = self.svc.catalog.get_state(_job_key(job_id))
        if not isinstance(job, dict) or job["status"] != "IN_PROGRESS":
            self.leases.release(job_id)
            return
        try:
            self._run_held(job_id, job)
        except LeaseLost:
            log.warning("video job %s was taken over by another process", job_id)
        finally:
            with self._lock:
                self._running.pop(job_id, None)

    def _run_held(self, job_id: str, job: dict) -> None:
        self._live[job_id] = (0.0, 0)
        try:
            analysis = self._analyse(job, self._saved_checkpoint(job))
            results, summary = self._report(job, analysis)
        except Interrupted:
            if self.leases.lost(job_id):
                raise LeaseLost(job_id) from None
            self._checkpoint(job_id)
            job["stopped_gracefully"] = True
            with self.svc.catalog.transaction() as tx:
                self.svc.catalog.set_state(tx, _job_key(job_id), job)
            self.leases.release(job_id)  # another process, or the next start, resumes it at once
            return
        except UnreadableVideo as exc:
            self._finish(job, "FAILED", None, str(exc))
            return
        except FaceledgerError as exc:
            self._finish(job, "FAILED", None, f"{exc.code}: {exc.message}")
            return
        except Exception as exc:
            log.exception("video job %s failed", job_id)
            self._finish(job, "FAILED", None, f"Internal error while analysing the video: {type(exc).__name__}.")
            return
        finally:
            self._live.pop(job_id, None)
        if self.leases.lost(job_id):
            raise LeaseLost(job_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_json(self._results_path(job_id), results)
        job["metadata"] = analysis.info.metadata()
        job["frames_analysed"] = analysis.frames_analysed
        self._finish(job, "SUCCEEDED", summary, None)

    def _analyse(self, job: dict, resume: Checkpoint | None = None) -> VideoAnalysis:
        path = Path(job["path"])
        if not path.is_file():
            raise UnreadableVideo(f"{path.name} was removed after the job started.")
        if file_sha256(path) != job["sha256"]:
            raise UnreadableVideo(f"{path.name} changed after the job started (SHA-256 differs).")
        track = job["kind"] == "search"
        # a search's frames are described by the pack its collection is pinned to
        engines = (collection_pack(self.svc, None, self.svc.catalog.get_collection(job["collection_id"])).engines
                   if track else self.svc.engines)

        def submit(pixels: np.ndarray) -> Any:
            return engines.submit_pixels(pixels, descriptors=track, fallback=self.settings.cnn_fallback)

        job_id = job["job_id"]

        def progress(percent: float, frames: int) -> None:
            self._live[job_id] = (percent, frames)

        def started_with(analysis: VideoAnalysis) -> None:
            with self._lock:
                self._running[job_id] = analysis

        return analyse_video(path, self.settings, submit, track=track,
                             all_attributes=job.get("face_attributes") == "ALL",
                             progress=progress, cancelled=lambda: self._stop.is_set() or self.leases.lost(job_id),
                             resume=None if track else resume, started_with=started_with)

    def _report(self, job: dict, analysis: VideoAnalysis) -> tuple[dict, dict]:
        """The Rekognition results and the ledger summary of a finished analysis."""
        base = {"frames_analysed": analysis.frames_analysed, "seconds": round(analysis.seconds, 3),
                "duration_ms": analysis.info.duration_ms}
        if job["kind"] == "detection":
            faces = [{"Timestamp": a.ms, "Face": a.detail} for a in analysis.appearances]
            return {"Faces": faces}, {**base, "faces": len(faces)}
        svc, cid = self.svc, job["collection_id"]
        pack = collection_pack(svc, None, svc.catalog.get_collection(cid))
        halt = svc.halted()
        if halt:
            raise HaltedError(f"Matching was halted by {halt['by']} before this search ran: {halt['reason']}.")
        rule = svc.policy.purpose(job["rule"])
        threshold = svc.search_threshold(job.get("threshold_requested"), svc.index.size(cid), rule)
        limit = min(self.settings.max_matches_per_person, int(rule.max_candidates))
        # the purpose's probe-quality floor applies to video probes as to images
        gated = {index: [p for p, q in zip(probes, analysis.qualities.get(index, [100.0] * len(probes)), strict=False)
                         if q >= rule.min_probe_quality]
                 for index, probes in analysis.persons.items()}
        scoring = scoring_report(svc, pack, cid)  # replaced by what the searches used, when any ran
        matches: dict = {}
        for index, probes in gated.items():
            matches[index], used = self._search(pack, cid, probes, threshold, limit) if probes else ([], None)
            scoring = used or scoring
        persons: list[dict[str, Any]] = [{
            "Timestamp": a.ms,
            "Person": {"Index": a.index, "BoundingBox": a.detail["BoundingBox"], "Face": a.detail},
            "FaceMatches": matches.get(-1 if a.index is None else a.index, []),
        } for a in analysis.appearances]
        persons.sort(key=lambda m: (m["Timestamp"], m["Person"]["Index"]))
        job["threshold"] = {**threshold.report(pack.calibration), **scoring, "Purpose": rule.name}
        summary = {**base, **_threshold_details(threshold), **scoring_details(scoring), "persons": len(analysis.persons),
                   # the collection's pack, not the default one the completion record would otherwise name
                   "model_version": pack.model_version, "calibration": pack.calibration.version,
                   "score_normalization": pack.scorer.version,
                   "confirmations_required": 2 if rule.two_person_review else 1,
                   "persons_below_quality": sum(1 for probes in gated.values() if not probes),
                   "appearances": len(persons),
                   "candidates": [{"Index": i, "Matches": [{"FaceId": m["Face"]["FaceId"],
                                                            "Similarity": m["Similarity"]} for m in ms]}
                                  for i, ms in sorted(matches.items()) if ms]}
        return {"Persons": persons}, summary

    def _search(self, pack: Pack, cid: str, probes: list[np.ndarray], threshold: Threshold,
                limit: int) -> tuple[list[dict], dict | None]:
        """A person's best faces searched one by one; each candidate kept at its best Similarity."""
        best: dict[str, dict] = {}
        report = None
        for vector in probes:
            found, report = search_vector(self.svc, pack, cid, vector, threshold, limit)
            for m in found:
                fid = m["Face"]["FaceId"]
                if fid not in best or m["Similarity"] > best[fid]["Similarity"]:
                    best[fid] = m
        ranked = sorted(best.values(), key=lambda m: -m["Similarity"])
        return ranked[:limit], report

    def _deactivate(self, tx: Any, job_id: str) -> None:
        active = [j for j in (self.svc.catalog.get_state(ACTIVE) or []) if j != job_id]
        self.svc.catalog.set_state(tx, ACTIVE, active)

    def _finish(self, job: dict, status: str, summary: dict | None, message: str | None) -> None:
        """End a job: status, its ledger record and leaving the active list, in one transaction.

        Only while this process still holds the job's lease (checked in that transaction): LeaseLost if not.
        """
        job["status"] = status
        job["finished_at"] = time.time()
        if message is not None:
            job["status_message"] = message
        elif status == "SUCCEEDED":
            job.pop("status_message", None)
        job.pop("stopped_gracefully", None)
        call = Call(
            operation=COMPLETED[job["kind"]], params={},
            principal=Principal(access_key_id=job["principal"], secret="", role=job["role"]),
            ctx=RequestContext(request_id=job.get("request_id", ""), purpose=job.get("purpose"),
                               case=job.get("case")),
        )
        details = {"job_id": job["job_id"], "status": status, "status_message": message,
                   "video_sha256": job["sha256"], "resumes": job.get("resumes") or None,
                   "resumed_after_frame": job.get("resumed_after_frame"), **(summary or {})}
        with self.svc.catalog.transaction() as tx:
            if not self.svc.catalog.renew_lease(tx, lease_name(job["job_id"]), turns.owner(), time.time(),
                                                self.settings.lease_s):
                raise LeaseLost(job["job_id"])
            rec = self.svc.record(tx, call, job.get("collection_id"), details)
            if job["kind"] == "search" and status == "SUCCEEDED":
                job["search_id"] = rec["seq"]  # reviewers name this record to confirm or reject candidates
            self.svc.catalog.set_state(tx, _job_key(job["job_id"]), job)
            self._deactivate(tx, job["job_id"])
        self.leases.release(job["job_id"])
        with self._lock:
            self._running.pop(job["job_id"], None)
            self._checkpoint_path(job["job_id"]).unlink(missing_ok=True)


def _write_json(path: Path, doc: Any) -> None:
    """``doc`` at ``path`` whole or not at all (a reader in another process never sees half of it)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def jobs(svc: Service) -> VideoJobs:
    """The service's video job runner (assembled with it: service/assembly.py)."""
    runner = svc.video
    if not isinstance(runner, VideoJobs):
        raise RuntimeError("this Service was assembled without video jobs")
    return runner
