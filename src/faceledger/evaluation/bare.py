"""The bare-engine baseline of the API benchmark: the same worker processes, no service around them.

Each worker loads an :class:`Engine` before the clock starts, then decodes and
analyses exactly as the service does for a search (``max_faces=1``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence

import numpy as np

from ..engine.engine import Engine, EngineSettings
from ..imaging import REKOGNITION_FORMATS, decode_image
from .server import machine_busy_s, other_cpu

_engine: Engine | None = None


def percentile_ms(seconds: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(seconds) * 1000, q)), 2) if seconds else None


def _bare_init(settings: EngineSettings) -> None:
    global _engine
    _engine = Engine(settings)


def _bare_search(data: bytes) -> tuple[float, float, int]:
    """What the service's SearchFacesByImage asks of its worker: decode, analyze one face.

    Returns wall seconds, CPU seconds (this worker process) and faces found.
    """
    assert _engine is not None
    t, c = time.perf_counter(), time.process_time()
    decoded = decode_image(data, allowed_formats=REKOGNITION_FORMATS)
    faces = _engine.analyze(decoded, max_faces=1)
    return time.perf_counter() - t, time.process_time() - c, len(faces)


class BareEngine:
    """``workers`` processes, each with an :class:`Engine` loaded at start, doing what a search asks.

    >>> with BareEngine(2, EngineSettings()) as bare:        # doctest: +SKIP
    ...     bare.throughput(images, 200)["images_per_s"]
    """

    def __init__(self, workers: int, settings: EngineSettings | None = None) -> None:
        self.workers = workers
        self.settings = settings or EngineSettings()
        ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
        self._pool = ctx.Pool(workers, initializer=_bare_init, initargs=(self.settings,))

    def __enter__(self) -> BareEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()

    def warm_up(self, images: Sequence[bytes]) -> None:
        self._pool.map(_bare_search, list(images[: 2 * self.workers]) * 2, chunksize=1)

    def latency(self, images: Sequence[bytes], n: int) -> tuple[list[float], list[float]]:
        """One image at a time: seconds in the worker, and seconds round trip from here."""
        in_worker, round_trip = [], []
        for i in range(n):
            t = time.perf_counter()
            took, _, _ = self._pool.apply(_bare_search, (images[i % len(images)],))
            round_trip.append(time.perf_counter() - t)
            in_worker.append(took)
        return in_worker, round_trip

    def throughput(self, images: Sequence[bytes], n: int) -> dict:
        """``n`` images (cycling through ``images``) with every worker busy."""
        batch = [images[i % len(images)] for i in range(n)]
        own0, busy0, t = time.process_time(), machine_busy_s(), time.perf_counter()
        cpu = [c for _, c, _ in self._pool.imap_unordered(_bare_search, batch, chunksize=1)]
        wall = time.perf_counter() - t
        own, busy1 = time.process_time() - own0, machine_busy_s()
        return {"images": len(cpu), "seconds": round(wall, 3), "images_per_s": round(len(cpu) / wall, 3),
                "cpu_s": round(sum(cpu), 3), "other_cpu_s": other_cpu(busy0, busy1, sum(cpu) + own)}


def summarise_bare(workers: int, settings: EngineSettings, runs: list[dict],
                   in_worker: list[float], round_trip: list[float]) -> dict:
    """The baseline over its runs: images/s is the best run's, as for the service's levels.

    ``spread`` (best - worst) / best says how much the machine's other load moved it.
    """
    rates = [r["images_per_s"] for r in runs]
    best = max(rates)
    return {
        "workers": workers, "images_per_s": round(best, 3),
        "runs": runs, "spread": round((best - min(rates)) / best, 4) if best else None,
        "cpu_ms_per_image": round(1000 * sum(r["cpu_s"] for r in runs) / sum(r["images"] for r in runs), 2),
        "latency_images": len(in_worker),
        "p50_ms": percentile_ms(in_worker, 50), "p99_ms": percentile_ms(in_worker, 99),
        "roundtrip_p50_ms": percentile_ms(round_trip, 50),
        "model_version": settings.model_version, "runtime": settings.runtime,
    }


