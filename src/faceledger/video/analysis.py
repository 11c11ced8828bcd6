"""One video file -> sampled faces (and, for searches, people with stable indexes).

The engine is injected as ``submit(pixels) -> Future`` whose result has
``.faces`` (``EnginePool.submit_pixels`` in the service, a plain ``Engine`` in
the local CLI), so each frame is its own engine call: a long video takes turns
with image requests on a shared pool instead of holding it. At most
``settings.inflight_frames`` frames of a video are queued at once, and the next
frame is decoded while those are analysed.

This module must not search collections, write the ledger or know about jobs;
it reports progress and stops early through the callbacks it is given.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..engine.report import face_detail
from ..engine.types import Face
from .settings import VideoSettings
from .source import VideoInfo, probe, sample_frames
from .track import Tracker


class HasFaces(Protocol):
    faces: list[Face]


Submit = Callable[[np.ndarray], "Future[Any]"]


class Interrupted(Exception):
    """The caller asked the analysis to stop (service shutting down)."""


@dataclass
class Appearance:
    """One face in one sampled frame; ``index`` is the person (None without tracking)."""

    ms: int
    detail: dict
    index: int | None = None


@dataclass
class VideoAnalysis:
    info: VideoInfo
    appearances: list[Appearance] = field(default_factory=list)
    persons: dict[int, list[np.ndarray]] = field(default_factory=dict)  # best descriptors per person
    qualities: dict[int, list[float]] = field(default_factory=dict)  # their quality scores, same order
    frames_analysed: int = 0
    seconds: float = 0.0
    last_ms: int = -1  # the timestamp of the last frame analysed (a checkpoint resumes after it)
    mark: tuple[int, int] = (0, -1)  # (frames_analysed, last_ms), replaced in one assignment for readers

    @property
    def frames_per_second(self) -> float:
        return self.frames_analysed / self.seconds if self.seconds > 0 else 0.0


def analyse_video(
    path: str | Path,
    settings: VideoSettings,
    submit: Submit,
    *,
    track: bool,
    all_attributes: bool = False,
    progress: Callable[[float, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    every_frame: bool = False,
    resume: Checkpoint | None = None,
    started_with: Callable[[VideoAnalysis], None] | None = None,
) -> VideoAnalysis:
    """Analyse the sampled frames of ``path``; ``every_frame`` samples every decoded frame.

    ``resume`` (detection only: a tracker's state is not checkpointed) carries on after a
    checkpoint's last frame with its appearances; ``started_with`` receives the result object
    being filled, so a caller can checkpoint it while the analysis runs.
    """
    if resume is not None and track:
        raise ValueError("only a detection analysis can resume from a checkpoint")
    started = time.perf_counter()
    info = probe(path)
    out = VideoAnalysis(info)
    if resume is not None:
        out.appearances = [Appearance(a.ms, a.detail, a.index) for a in resume.appearances]
        out.frames_analysed, out.last_ms = resume.frames_analysed, resume.last_ms
        out.mark = (out.frames_analysed, out.last_ms)
    if started_with is not None:
        started_with(out)
    tracker = Tracker(gap_ms=settings.track_gap_ms, link_distance=settings.link_distance,
                      reid_distance=settings.reid_distance, keep_best=settings.search_faces_per_person)
    pending: deque[tuple[int, Future[Any]]] = deque()
    interval = 1e-3 if every_frame else settings.sample_interval_ms

    def finish_one() -> None:
        ms, fut = pending.popleft()
        faces: list[Face] = fut.result().faces
        indexes: list[int | None] = list(tracker.update(ms, faces)) if track else [None] * len(faces)
        for face, index in zip(faces, indexes, strict=True):
            out.appearances.append(Appearance(ms, face_detail(face, all_attributes=all_attributes), index))
        out.frames_analysed += 1
        out.last_ms = ms
        out.mark = (out.frames_analysed, ms)
        if progress is not None:
            progress(_percent(ms, info), out.frames_analysed)

    try:
        for ms, pixels in sample_frames(path, interval, max_pixels=settings.max_frame_pixels):
            if ms <= out.last_ms:  # analysed before the checkpoint: decoded again, not analysed again
                continue
            if cancelled is not None and cancelled():
                raise Interrupted("stopped before the end of the video")
            pending.append((ms, submit(pixels)))
            while len(pending) >= max(1, settings.inflight_frames):
                finish_one()
        while pending:
            finish_one()
    finally:
        for _, fut in pending:
            fut.cancel()
    if track:
        out.persons = {t.index: t.best_descriptors() for t in tracker.tracks}
        out.qualities = {t.index: t.best_qualities() for t in tracker.tracks}
    out.seconds = time.perf_counter() - started
    return out


@dataclass(frozen=True)
class Checkpoint:
    """How far a detection analysis got: the frames up to ``last_ms`` and the faces found in them."""

    last_ms: int
    frames_analysed: int
    appearances: list[Appearance]

    @classmethod
    def of(cls, analysis: VideoAnalysis) -> Checkpoint:
        frames, last = analysis.mark  # first: a frame's appearances land before it is counted
        appearances = [a for a in list(analysis.appearances) if a.ms <= last]  # a copy: more are appended
        return cls(last, frames, appearances)

    def to_json(self) -> dict:
        return {"last_ms": self.last_ms, "frames_analysed": self.frames_analysed,
                "appearances": [[a.ms, a.detail, a.index] for a in self.appearances]}

    @classmethod
    def from_json(cls, doc: dict) -> Checkpoint:
        return cls(int(doc["last_ms"]), int(doc["frames_analysed"]),
                   [Appearance(int(ms), detail, index) for ms, detail, index in doc["appearances"]])


def _percent(ms: int, info: VideoInfo) -> float:
    if not info.duration_ms:
        return 0.0
    return round(min(99.0, 100.0 * ms / info.duration_ms), 1)
