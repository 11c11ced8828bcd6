"""End-to-end throughput: every face of every image, described, across worker processes."""

from __future__ import annotations

import multiprocessing as mp
import time

from ..engine.engine import Engine, EngineSettings
from ..errors import FaceledgerError
from ..imaging import read_image_file
from .embedding import _bar, image_paths

_engine: Engine | None = None


def _init(settings: EngineSettings) -> None:
    global _engine
    _engine = Engine(settings, calibration=None)


def _faces_in(path: str) -> int:
    assert _engine is not None
    try:
        return len(_engine.analyze(read_image_file(path)))
    except FaceledgerError:
        return -1


def run_throughput(root: str, *, settings: EngineSettings, limit: int | None, procs: int,
                   progress: bool) -> dict:
    paths = image_paths(root, limit)
    ctx = mp.get_context("fork")
    bar = _bar(len(paths), progress)
    counts = []
    # workers load models before the clock starts, as a long-running service would
    with ctx.Pool(procs, initializer=_init, initargs=(settings,)) as pool:
        pool.map(_faces_in, paths[: procs], chunksize=1)
        t = time.perf_counter()
        for n in pool.imap(_faces_in, paths, chunksize=8):
            counts.append(n)
            bar.update(1)
        elapsed = time.perf_counter() - t
    bar.close()
    faces = sum(c for c in counts if c > 0)
    return {
        "images": len(paths), "faces": faces, "unreadable": sum(1 for c in counts if c < 0),
        "seconds": round(elapsed, 2), "images_per_s": round(len(paths) / elapsed, 3),
        "faces_per_s": round(faces / elapsed, 3), "procs": procs,
        "model_version": settings.model_version, "runtime": settings.runtime,
    }
