"""The engine, run in a bounded pool of worker processes.

dlib holds the GIL while it computes, so threads cannot use both cores;
worker processes can. Each worker opens its own Engine once. Images travel to
a worker as bytes and come back as Face records (small: no pixels). With
``processes=0`` the engine runs in the calling thread (unit tests, fakes).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..engine import Engine, EngineSettings
from ..engine.types import Face
from ..imaging import REKOGNITION_FORMATS, decode_image
from .deathsig import die_with_parent

_engine: Engine | None = None


@dataclass
class Analysis:
    width: int
    height: int
    faces: list[Face]


def _init(settings: EngineSettings) -> None:
    global _engine
    die_with_parent()
    _engine = Engine(settings)


def _analyze(data: bytes, descriptors: bool, max_faces: int | None) -> Analysis:
    assert _engine is not None
    return _analyze_with(_engine, data, descriptors, max_faces)


def _analyze_with(engine: Engine, data: bytes, descriptors: bool, max_faces: int | None) -> Analysis:
    decoded = decode_image(data, allowed_formats=REKOGNITION_FORMATS)
    faces = engine.analyze(decoded, descriptors=descriptors, max_faces=max_faces)
    return Analysis(decoded.width, decoded.height, faces)


def _analyze_pixels(pixels: np.ndarray, descriptors: bool, max_faces: int | None, fallback: str) -> Analysis:
    assert _engine is not None
    return _analyze_pixels_with(_engine, pixels, descriptors, max_faces, fallback)


_frame_engines: dict[tuple[int, str], Engine] = {}


def _frame_engine(engine: Engine, fallback: str) -> Engine:
    """The engine with a video frame's detector fallback: "full" (as for photos), "large" or "off"."""
    if fallback == "full":
        return engine
    key = (id(engine), fallback)
    found = _frame_engines.get(key)
    if found is None:
        from ..video.detect import LargeFaceFallback

        found = copy.copy(engine)  # shares the loaded models; only detector and settings differ
        found.settings = replace(engine.settings, fallback_detector=False)
        if fallback == "large" and engine.detector.name == "hog":
            found.detector = LargeFaceFallback(engine.detector)
        _frame_engines[key] = found
    return found


def _analyze_pixels_with(engine: Engine, pixels: np.ndarray, descriptors: bool, max_faces: int | None,
                         fallback: str) -> Analysis:
    """A decoded RGB frame (video): no image decoding, the chosen detector fallback."""
    faces = _frame_engine(engine, fallback).analyze(pixels, descriptors=descriptors, max_faces=max_faces)
    return Analysis(int(pixels.shape[1]), int(pixels.shape[0]), faces)


class EnginePool:
    """``analyze(bytes)`` on the engine, in-process or in worker processes."""

    def __init__(self, settings: EngineSettings, processes: int = 0, engine: Engine | None = None) -> None:
        self.settings = settings
        self._local = engine
        self._pool: ProcessPoolExecutor | None = None
        self.processes = max(1, processes)
        if engine is None and processes > 0:
            ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
            if os.name == "posix":
                ctx.set_forkserver_preload(["faceledger.service.deathsig"])
            self._pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init,
                                             initargs=(settings,))
            # load the models now, not on the first request
            list(self._pool.map(_noop, range(processes)))
        elif engine is None:
            self._local = Engine(settings)

    def analyze(self, data: bytes, *, descriptors: bool = True, max_faces: int | None = None) -> Analysis:
        if self._pool is not None:
            return self._pool.submit(_analyze, data, descriptors, max_faces).result()
        assert self._local is not None
        return _analyze_with(self._local, data, descriptors, max_faces)

    def submit_pixels(self, pixels: np.ndarray, *, descriptors: bool = True, max_faces: int | None = None,
                      fallback: str = "large") -> Future[Analysis]:
        """Queue one decoded frame behind the requests already waiting (FIFO, shared fairly)."""
        if self._pool is not None:
            return self._pool.submit(_analyze_pixels, pixels, descriptors, max_faces, fallback)
        assert self._local is not None
        done: Future[Analysis] = Future()
        try:
            done.set_result(_analyze_pixels_with(self._local, pixels, descriptors, max_faces, fallback))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            done.set_exception(exc)
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None


def _noop(_: int) -> None:
    assert _engine is not None
