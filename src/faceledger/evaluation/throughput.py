"""End-to-end throughput: every face of every image, described, across worker processes."""

from __future__ import annotations

import multiprocessing as mp
import time

from ..engine.engine import Engine, EngineSettings
from ..errors import FaceledgerError
from ..imaging import read_image_file
from .embedding import _bar, image_paths

_engine: Engine | None = None
BATCH_IMAGES = 8  # images whose chips share one network batch


def _init(settings: EngineSettings) -> None:
    global _engine
    _engine = Engine(settings, calibration=None)


def _faces_in(paths: list[str]) -> list[int]:
    """Faces found per image of a chunk; chips of the whole chunk go through the network as one batch."""
    assert _engine is not None
    images, counts = [], []
    for path in paths:
        try:
            images.append(read_image_file(path))
            counts.append(0)
        except FaceledgerError:
            counts.append(-1)
    found = iter(_engine.analyze_many(images))  # type: ignore[arg-type]
    return [c if c < 0 else len(next(found)) for c in counts]


def run_throughput(root: str, *, settings: EngineSettings, limit: int | None, procs: int,
                   progress: bool) -> dict:
    paths = image_paths(root, limit)
    ctx = mp.get_context("fork")
    bar = _bar(len(paths), progress)
    counts = []
    # workers load models before the clock starts, as a long-running service would
    chunks = [paths[i:i + BATCH_IMAGES] for i in range(0, len(paths), BATCH_IMAGES)]
    with ctx.Pool(procs, initializer=_init, initargs=(settings,)) as pool:
        pool.map(_faces_in, [[p] for p in paths[:procs]], chunksize=1)
        t = time.perf_counter()
        for found in pool.imap(_faces_in, chunks, chunksize=1):
            counts.extend(found)
            bar.update(len(found))
        elapsed = time.perf_counter() - t
    bar.close()
    faces = sum(c for c in counts if c > 0)
    return {
        "images": len(paths), "faces": faces, "unreadable": sum(1 for c in counts if c < 0),
        "seconds": round(elapsed, 2), "images_per_s": round(len(paths) / elapsed, 3),
        "faces_per_s": round(faces / elapsed, 3), "procs": procs,
        "model_version": settings.model_version, "runtime": settings.runtime,
    }
