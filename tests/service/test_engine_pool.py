"""EnginePool's own contract: errors cross the worker pipe as themselves; bad budgets are refused."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from faceledger.engine import EngineSettings
from faceledger.errors import EngineBudgetError, InvalidImageError, InvalidParameterError
from faceledger.service import workers
from faceledger.service.workers import EnginePool


def test_an_image_error_in_a_worker_is_the_callers_error_and_the_worker_stays(grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    pool = EnginePool(EngineSettings(), processes=1, timeout_s=120)
    try:
        with pytest.raises(InvalidImageError):
            pool.analyze(b"not an image")
        assert len(pool.analyze(grace_hopper_bytes).faces) == 1
        frame = pool.submit_pixels(np.zeros((64, 64, 3), dtype=np.uint8)).result(timeout=120)
        assert frame.faces == [] and (frame.width, frame.height) == (64, 64)
        state = pool.state()
        assert (state["alive"], state["restarts"], state["lost"], state["ready"]) == (1, 0, 0, True)
    finally:
        pool.close()
    assert pool.state()["ready"] is False  # closed: takes no more work


def test_in_process_pool_reports_ready(engine) -> None:  # type: ignore[no-untyped-def]
    state = EnginePool(EngineSettings(), engine=engine).state()
    assert state["mode"] == "in-process" and state["ready"] and state["live"]


@pytest.mark.parametrize("kw", [{"timeout_s": 0}, {"timeout_s": -1}, {"max_rss_mb": -5}])
def test_a_bad_engine_budget_is_refused_before_any_worker_starts(kw) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError, match="FACELEDGER_ENGINE"):
        EnginePool(EngineSettings(), processes=1, **kw)


def test_a_worker_killed_while_idle_costs_no_request(grace_hopper_bytes) -> None:  # type: ignore[no-untyped-def]
    """Killed just before a job reached it: the job never ran, so it runs on the replacement."""
    pool = EnginePool(EngineSettings(), processes=1, timeout_s=120)
    try:
        for _ in range(3):
            pid = pool.pids()[0]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            assert len(pool.analyze(grace_hopper_bytes).faces) == 1  # at once: no request is lost
            assert pool.pids()[0] not in (None, pid)
        state = pool.state()
        assert state["restarts"] == 3 and state["alive"] == 1
    finally:
        pool.close()


class _LateTimer(threading.Timer):
    """A watchdog whose deadline passes just as its job answers: cancel() comes too late to stop it."""

    def cancel(self) -> None:
        super().cancel()
        self.function(*self.args, **self.kwargs)


def test_a_watchdog_that_fires_as_its_job_answers_kills_nothing(grace_hopper_bytes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The job has its answer: its late watchdog must not kill the worker (nor fail the next job)."""
    pool = EnginePool(EngineSettings(), processes=1, timeout_s=120)
    try:
        monkeypatch.setattr(workers.threading, "Timer", _LateTimer)
        pid = pool.pids()[0]
        for _ in range(3):
            assert len(pool.analyze(grace_hopper_bytes).faces) == 1
        state = pool.state()
        assert (state["timeouts"], state["runaway"], state["restarts"]) == (0, 0, 0), state
        assert pool.pids()[0] == pid
    finally:
        pool.close()


def _mosaic(tiles: int) -> bytes:
    import io

    from PIL import Image

    from ..conftest import data_path

    face = Image.open(sorted(data_path("lfw_dev").glob("A*/*_0001.jpg"))[0]).convert("RGB")
    big = Image.new("RGB", (250 * tiles, 250 * tiles))
    for i in range(tiles):
        for j in range(tiles):
            big.paste(face, (250 * i, 250 * j))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=70)
    return out.getvalue()


def test_a_worker_that_ran_out_of_memory_is_replaced_before_its_next_job() -> None:
    """dlib's CNN does not survive a failed allocation: the next job (another caller's) crashed the worker."""
    pool = EnginePool(EngineSettings(detector="cnn"), processes=1, timeout_s=120, max_memory_mb=600)
    try:
        big, small = _mosaic(4), _mosaic(1)
        for data in (big, big, small):
            try:
                pool.analyze(data)
            except EngineBudgetError as exc:
                assert "FACELEDGER_ENGINE_MAX_MEMORY_MB" in str(exc)
        state = pool.state()
        assert state["lost"] == 0, state  # no caller got InternalServerError for another's image
        assert state["recycled"] >= 2, state
    finally:
        pool.close()


def test_a_video_frame_whose_worker_died_holding_it_is_run_again() -> None:
    """submit_pixels: a frame is queued once more when its worker dies mid-frame (FRAME_RETRIES)."""
    import io
    import time

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(_mosaic(8))).convert("RGB"))  # 2000 x 2000: ~0.5 s of HOG
    pool = EnginePool(EngineSettings(), processes=1, timeout_s=120)
    try:
        frames = [pool.submit_pixels(pixels) for _ in range(3)]
        deadline = time.monotonic() + 60
        while pool.state()["busy"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)  # it has taken the frame (acknowledged) and is analysing it
        pid = pool.pids()[0]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert [len(f.result(timeout=180).faces) for f in frames] == [64, 64, 64]
        state = pool.state()
        assert state["lost"] == 1 and state["restarts"] == 1, state
    finally:
        pool.close()
