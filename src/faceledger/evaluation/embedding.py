"""Describe many image files in parallel worker processes, with a progress bar.

Each worker process opens its own Engine once (models are not shared across
processes); images go out in small chunks so both cores stay busy. The result
for each file keeps the central face's descriptor both plain and
mirror-averaged, so one pass serves both model versions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..engine.engine import Engine, EngineSettings, central_face
from ..errors import FaceledgerError
from ..imaging import read_image_file

_engine: Engine | None = None


@dataclass
class Described:
    path: str
    faces: int
    plain: np.ndarray | None  # (dim,) central face, one pass
    mirror: np.ndarray | None  # (dim,) central face, chip + mirror averaged
    error: str | None = None
    detector: str | None = None


def _init(settings: EngineSettings) -> None:
    global _engine
    _engine = Engine(settings)


def describe_file(path: str) -> Described:
    assert _engine is not None
    try:
        pixels = read_image_file(path).pixels
        faces = _engine.analyze(pixels, descriptors=False)
        face = central_face(faces)
        if face is None:
            return Described(path, 0, None, None)
        plain, mirror = _engine.pair_descriptors(_engine.chip(pixels, face))
        return Described(path, len(faces), plain, mirror, None, face.detector)
    except FaceledgerError as exc:
        return Described(path, 0, None, None, exc.message)


def describe_files(
    paths: list[str], *, settings: EngineSettings | None = None, procs: int | None = None,
    progress: bool = True,
) -> Iterator[Described]:
    """Yield a Described per path, in input order."""
    settings = settings or EngineSettings()
    procs = procs or os.cpu_count() or 1
    bar = _bar(len(paths), progress)
    if procs <= 1:
        _init(settings)
        for p in paths:
            yield describe_file(p)
            bar.update(1)
    else:
        ctx = mp.get_context("fork")
        with ctx.Pool(procs, initializer=_init, initargs=(settings,)) as pool:
            for item in pool.imap(describe_file, paths, chunksize=8):
                yield item
                bar.update(1)
    bar.close()


def _bar(total: int, enabled: bool):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", mininterval=1.0, dynamic_ncols=True)


def image_paths(root: str, limit: int | None = None) -> list[str]:
    exts = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".gif")
    out: list[str] = []
    for d, _, files in os.walk(root):
        out.extend(os.path.join(d, f) for f in files if f.lower().endswith(exts))
    out.sort()
    return out[:limit] if limit else out


def save_cache(path: str, root: str, items: Iterable[Described], model: str = "") -> dict:
    """Write descriptors to ``path``; ``model``: the pipeline that made them (checked when the cache is read)."""
    items = list(items)
    rel = np.array([os.path.relpath(i.path, root) for i in items])
    ok = np.array([i.plain is not None for i in items])
    dim = next((len(i.plain) for i in items if i.plain is not None), 128)
    plain = np.array([i.plain if i.plain is not None else np.zeros(dim) for i in items], np.float32)
    mirror = np.array([i.mirror if i.mirror is not None else np.zeros(dim) for i in items], np.float32)
    faces = np.array([i.faces for i in items])
    np.savez_compressed(path, rel=rel, ok=ok, plain=plain, mirror=mirror, faces=faces, created=time.time(),
                        model=np.array(model.replace("-mirror", "")))
    return {"images": len(items), "with_face": int(ok.sum())}


def load_cache(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
