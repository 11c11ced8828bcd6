"""One engine worker process: what runs on the child side of the pipe.

The worker opens its own :class:`Engine` once, says ``("ready", pid)`` (or
``("init_error", exc)`` when the models cannot be loaded, e.g. a corrupt model
file), then answers one job at a time: ``(kind, args)`` in, ``("taken",)`` at
once (a job not taken never ran, so the supervisor may run it elsewhere), then
``("ok", result, rss)`` or ``("error", exc, rss)``, where ``rss`` is the worker's resident
memory after the job so the supervisor can recycle a worker that grew too big.
``None`` (or the pipe closing) ends it. Its address space is capped
(FACELEDGER_ENGINE_MAX_MEMORY_MB): a job that needs more fails with
:class:`EngineBudgetError`, and the supervisor replaces the worker before its next
job (native code may be left broken by a failed allocation). The supervisor is
:mod:`faceledger.service.workers`.
"""

from __future__ import annotations

import copy
import os
import pickle
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from ..engine import Engine, EngineSettings
from ..engine.types import Face
from ..errors import EngineBudgetError, InvalidParameterError
from ..imaging import REKOGNITION_FORMATS, decode_image
from .deathsig import die_with_parent


@dataclass
class Analysis:
    width: int
    height: int
    faces: list[Face]


def analyze_with(engine: Engine, data: bytes, descriptors: bool, max_faces: int | None,
                 landmarks: bool = True) -> Analysis:
    decoded = decode_image(data, allowed_formats=REKOGNITION_FORMATS)
    faces = engine.analyze(decoded, descriptors=descriptors, max_faces=max_faces, landmarks=landmarks)
    return Analysis(decoded.width, decoded.height, faces)


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


def analyze_pixels_with(engine: Engine, pixels: np.ndarray, descriptors: bool, max_faces: int | None,
                        fallback: str) -> Analysis:
    """A decoded RGB frame (video): no image decoding, the chosen detector fallback."""
    faces = _frame_engine(engine, fallback).analyze(pixels, descriptors=descriptors, max_faces=max_faces)
    return Analysis(int(pixels.shape[1]), int(pixels.shape[0]), faces)


JOBS: dict[str, Callable[..., Analysis]] = {"analyze": analyze_with, "pixels": analyze_pixels_with}


def resident_bytes() -> int:
    """This process's resident set size now (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError that names it (no traceback crosses)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is described instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def cap_memory(max_bytes: int) -> None:
    """Cap this process's address space (RLIMIT_AS): past it allocations raise MemoryError."""
    if max_bytes > 0 and hasattr(resource, "RLIMIT_AS"):
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


def over_memory(max_bytes: int) -> EngineBudgetError:
    return EngineBudgetError(
        f"Analysing this image needed more than the {max_bytes >> 20} MiB engine memory bound "
        "(FACELEDGER_ENGINE_MAX_MEMORY_MB) and was stopped; send a smaller image.")


def main(conn: Connection, settings: EngineSettings, max_memory_bytes: int = 0) -> None:
    """The worker process's whole life. Never raises: every failure goes back over ``conn``."""
    die_with_parent()  # a SIGKILLed server leaves no worker behind
    # Ctrl-C at a terminal reaches the whole process group; the supervisor ends workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cap_memory(max_memory_bytes)
        engine = Engine(settings)
    except (MemoryError, ImportError) as exc:
        if not max_memory_bytes:
            conn.send(("init_error", portable(exc)))
            return
        conn.send(("init_error", InvalidParameterError(
            f"FACELEDGER_ENGINE_MAX_MEMORY_MB={max_memory_bytes >> 20} is too small for an engine worker "
            f"to load its models ({type(exc).__name__}); raise it (a worker needs about 450 MiB).")))
        return
    except BaseException as exc:  # noqa: BLE001 - reported to the supervisor, which raises it
        conn.send(("init_error", portable(exc)))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg: Any = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        conn.send(("taken",))  # from here on the job counts as run: a death now fails it
        kind, args = msg
        try:
            result = JOBS[kind](engine, *args)
        except MemoryError as exc:
            conn.send(("error", over_memory(max_memory_bytes) if max_memory_bytes else exc, resident_bytes()))
        except Exception as exc:  # noqa: BLE001 - the caller's error, raised in the caller
            conn.send(("error", portable(exc), resident_bytes()))
        else:
            conn.send(("ok", result, resident_bytes()))
