"""The engine, run in a supervised set of worker processes.

dlib holds the GIL while it computes, so threads cannot use both cores;
worker processes can. Each worker (:mod:`.engine_worker`) opens its own Engine
once and has its own pipe; one supervisor thread per worker takes the next job
from one shared FIFO queue (so requests and video frames are served in arrival
order), sends it, and waits for the answer, the worker's death, or the job's
deadline (``timeout_s``, FACELEDGER_ENGINE_TIMEOUT_S).

A worker that dies or hangs is killed and replaced. A job it had not yet
acknowledged ("taken") never ran and is queued again; only a job it held fails: :class:`EngineWorkerLostError` (InternalServerError, retried by every
AWS SDK), or :class:`EngineBudgetError` (ImageTooLargeException, not retried)
when the worker was busy computing for the whole budget, i.e. the image itself
runs away. A worker's address space is capped at ``max_memory_mb`` (a job
that needs more fails with EngineBudgetError, and the worker is replaced before its
next job: dlib's native code is not safe after a failed allocation), and a
worker whose resident memory passes ``max_rss_mb`` after a job is recycled. With ``processes=0`` the engine runs in the calling thread (unit
tests, fakes), without a time budget.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from ..engine import Engine, EngineSettings
from ..errors import (
    EngineBudgetError,
    EngineUnavailableError,
    EngineWorkerLostError,
    FaceledgerError,
    InvalidParameterError,
)
from . import engine_worker
from .engine_worker import Analysis, analyze_pixels_with, analyze_with

__all__ = ["Analysis", "EnginePool", "analyze_pixels_with", "analyze_with"]
_analyze_pixels_with = analyze_pixels_with  # the local video CLI's name for it

log = logging.getLogger("faceledger.engine")

START_TIMEOUT_S = 300.0  # loading the models on a busy machine
# A job that ran out of time while its worker was on a CPU at least this share
# of the time was computing (a runaway image); less means stopped or stuck.
BUSY_FRACTION = 0.25
IDLE_CHECK_S = 0.5  # how often an idle supervisor thread checks its worker is alive
FRAME_RETRIES = 1  # a video frame whose worker died is queued again this often

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux), else None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            after_name = fh.read().rsplit(")", 1)[1].split()
        return (int(after_name[11]) + int(after_name[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Job:
    kind: str
    args: tuple
    future: Future
    retries: int = 0
    claimed: bool = False  # its future is running (a job queued again keeps it)

    def claim(self) -> bool:
        """Mark the future running; False when the caller cancelled it."""
        if not self.claimed:
            self.claimed = self.future.set_running_or_notify_cancel()
            return self.claimed
        return True


class _Slot:
    """One worker process and the state its supervisor thread keeps about it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: Any = None  # multiprocessing.Process
        self.conn: Connection | None = None
        self.pid: int | None = None
        # starting | idle | busy | restarting | failed | stopped
        self.state = "starting"
        self.expired = False  # the watchdog killed it
        self.runaway = False  # ... and it had been computing
        # the job whose watchdog may still kill the worker: None once its answer is in
        self.job: _Job | None = None
        self.watch = threading.Lock()  # the watchdog's check-and-kill against the answer arriving

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()


class EnginePool:
    """``analyze(bytes)`` on the engine, in-process or in supervised worker processes."""

    def __init__(self, settings: EngineSettings, processes: int = 0, engine: Engine | None = None, *,
                 timeout_s: float = 60.0, max_rss_mb: int = 0, max_memory_mb: int = 0) -> None:
        if not timeout_s > 0 or max_rss_mb < 0 or max_memory_mb < 0:
            raise InvalidParameterError("FACELEDGER_ENGINE_TIMEOUT_S must be above 0, "
                                        "FACELEDGER_ENGINE_MAX_RSS_MB and FACELEDGER_ENGINE_MAX_MEMORY_MB "
                                        "at least 0.")
        self.settings = settings
        self.processes = max(1, processes)
        self.timeout_s = float(timeout_s)
        self.max_rss_bytes = int(max_rss_mb) * 1024 * 1024
        self.max_memory_bytes = int(max_memory_mb) * 1024 * 1024
        self._local = engine
        self._slots: list[_Slot] = []
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counts = {"restarts": 0, "lost": 0, "timeouts": 0, "runaway": 0, "recycled": 0}
        if engine is None and processes > 0:
            self._ctx: Any = mp.get_context("forkserver" if os.name == "posix" else "spawn")
            if os.name == "posix":
                # the forkserver dies with serve (so do the workers it forks); serve itself does not
                self._ctx.set_forkserver_preload(["faceledger.service.forkserver_init"])
            self._start()
        elif engine is None:
            self._local = Engine(settings)

    def like(self, settings: EngineSettings) -> EnginePool:
        """A pool run as this one is (in-process or as many workers, same limits) with other engine settings."""
        return EnginePool(settings, processes=len(self._slots), timeout_s=self.timeout_s,
                          max_rss_mb=self.max_rss_bytes // (1024 * 1024),
                          max_memory_mb=self.max_memory_bytes // (1024 * 1024))

    # ------------------------------------------------------------------ callers

    def analyze(self, data: bytes, *, descriptors: bool = True, max_faces: int | None = None,
                landmarks: bool = True) -> Analysis:
        """``landmarks=False`` when the response reports none (the engine then skips FaceMesh)."""
        if self._slots:
            return self._submit("analyze", (data, descriptors, max_faces, landmarks)).result()
        assert self._local is not None
        return analyze_with(self._local, data, descriptors, max_faces, landmarks)

    def submit_pixels(self, pixels: np.ndarray, *, descriptors: bool = True, max_faces: int | None = None,
                      fallback: str = "large") -> Future[Analysis]:
        """Queue one decoded frame behind the requests already waiting (FIFO, shared fairly)."""
        done: Future[Analysis] = Future()
        try:
            if self._slots:
                return self._submit("pixels", (pixels, descriptors, max_faces, fallback), FRAME_RETRIES)
            assert self._local is not None
            done.set_result(analyze_pixels_with(self._local, pixels, descriptors, max_faces, fallback))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            done.set_exception(exc)
        return done

    def state(self) -> dict[str, Any]:
        """The engine's real state, for /health and /ready: workers alive, restarts, queue."""
        if not self._slots:
            return {"mode": "in-process", "status": "ok", "workers": 1, "alive": 1, "busy": 0, "restarts": 0,
                    "ready": self._local is not None, "live": self._local is not None}
        states = [s.state for s in self._slots]
        alive = sum(st in ("idle", "busy") for st in states)
        live = not self._stop.is_set() and states.count("failed") < len(states)
        with self._lock:
            counts = dict(self._counts)
        return {"mode": "processes", "status": "ok" if alive == len(states) else "degraded" if live else "failing",
                "workers": len(states), "alive": alive, "busy": states.count("busy"),
                "restarting": sum(st in ("starting", "restarting") for st in states),
                "failed": states.count("failed"), "queued": self._queue.qsize(), **counts,
                "timeout_s": self.timeout_s, "ready": alive > 0 and not self._stop.is_set(), "live": live}

    def pids(self) -> list[int | None]:
        """The worker processes' ids, by slot (None while one is being replaced)."""
        return [s.pid if s.state in ("idle", "busy") else None for s in self._slots]

    def close(self) -> None:
        """Finish the jobs already queued, then end every worker."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            for _ in self._threads:
                self._queue.put(None)
        for t in self._threads:
            t.join()
        for slot in self._slots:
            self._stop_worker(slot)
        self._fail_queued("The engine shut down before this request ran.")

    # ------------------------------------------------------------------ supervisor

    def _start(self) -> None:
        self._slots = [_Slot(i) for i in range(self.processes)]
        try:
            for slot in self._slots:
                self._spawn(slot)
            for slot in self._slots:  # load the models now, not on the first request
                self._await_ready(slot)
        except BaseException:
            for slot in self._slots:
                self._reap(slot)
            self._slots = []
            raise
        for slot in self._slots:
            t = threading.Thread(target=self._serve, args=(slot,), name=f"engine-supervisor-{slot.index}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _submit(self, kind: str, args: tuple, retries: int = 0) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._stop.is_set():
                raise EngineUnavailableError("The engine is shutting down; retry against the restarted service.")
            if all(s.state == "failed" for s in self._slots):
                raise EngineUnavailableError(
                    "No engine worker can take work: they cannot be restarted (see the server log); retry later.")
            self._queue.put(_Job(kind, args, fut, retries))
        return fut

    def _serve(self, slot: _Slot) -> None:
        """One supervisor thread: keep the worker alive and feed it jobs, one at a time."""
        while True:
            if not slot.alive():
                if not self._restart(slot):
                    return
                continue
            try:
                job = self._queue.get(timeout=IDLE_CHECK_S)
            except queue.Empty:
                continue
            if job is None:
                return
            if job.claim():
                self._run(slot, job)

    def _run(self, slot: _Slot, job: _Job) -> None:
        assert slot.conn is not None and slot.proc is not None
        slot.state, slot.expired, slot.runaway = "busy", False, False
        proc = slot.proc
        slot.job = job
        watchdog = threading.Timer(self.timeout_s, self._expire,
                                   args=(slot, job, proc, _cpu_seconds(slot.pid), time.monotonic()))
        watchdog.daemon = True
        watchdog.start()
        msg, taken = None, False
        try:
            if not proc.is_alive():
                raise BrokenPipeError  # died while idle, not yet noticed
            slot.conn.send((job.kind, job.args))
            while msg is None:
                wait([slot.conn, proc.sentinel])
                if not slot.conn.poll():
                    break  # died without a word
                answer = slot.conn.recv()
                if answer[0] == "taken":
                    taken = True
                else:
                    msg = answer
        except (EOFError, OSError):
            msg = None
        except BaseException as exc:  # noqa: BLE001 - e.g. unpicklable arguments: the caller's error
            self._unwatch(slot, watchdog)
            slot.state = "idle"
            job.future.set_exception(exc)
            return
        finally:
            self._unwatch(slot, watchdog)
        if msg is not None:
            status, payload, rss = msg
            if status == "ok":
                job.future.set_result(payload)
            else:
                job.future.set_exception(payload)
            slot.state = "idle"
            if status != "ok" and isinstance(payload, (MemoryError, EngineBudgetError)):
                # native code (dlib's CNN) is not safe after a failed allocation: the next job,
                # another caller's, could crash the worker; a fresh one takes it instead
                log.info("engine worker %d ran out of memory in a job; recycling it", slot.index)
                self._count("recycled")
                self._stop_worker(slot)
            elif self.max_rss_bytes and rss > self.max_rss_bytes:
                log.info("engine worker %d uses %d MiB (> FACELEDGER_ENGINE_MAX_RSS_MB); recycling it",
                         slot.index, rss >> 20)
                self._count("recycled")
                self._stop_worker(slot)
            return
        if not taken:
            # dead or stopped before it took the job: the job never ran, so it runs elsewhere
            log.warning("engine worker %d (pid %s) %s before taking a job; replacing it", slot.index, slot.pid,
                        "did not answer" if slot.expired else "died")
            self._count("timeouts" if slot.expired else "lost")
            slot.state = "restarting"
            self._reap(slot)
            if not self._stop.is_set():
                self._queue.put(job)
            else:
                job.future.set_exception(EngineUnavailableError("The engine shut down before this request ran."))
            return
        self._lost(slot, job)

    def _lost(self, slot: _Slot, job: _Job) -> None:
        """The worker running ``job`` died or was killed by its watchdog: fail (or requeue) the job."""
        proc = slot.proc
        proc.join(5)
        code = proc.exitcode
        slot.state = "restarting"
        if slot.expired and slot.runaway:
            self._count("runaway")
            log.warning("engine worker %d ran out of its %.0f s budget computing; killed", slot.index,
                        self.timeout_s)
            job.future.set_exception(EngineBudgetError(
                f"Analysing this image took more than the {self.timeout_s:g} s engine budget "
                "(FACELEDGER_ENGINE_TIMEOUT_S) and was stopped; send a smaller image."))
        else:
            why = (f"did not answer within {self.timeout_s:g} s (FACELEDGER_ENGINE_TIMEOUT_S)"
                   if slot.expired else f"died (exit code {code})")
            self._count("timeouts" if slot.expired else "lost")
            log.warning("engine worker %d (pid %s) %s; replacing it", slot.index, slot.pid, why)
            if job.retries > 0 and not self._stop.is_set():
                job.retries -= 1
                self._queue.put(job)
            else:
                job.future.set_exception(EngineWorkerLostError(
                    f"The engine worker analysing this request {why} and was replaced; retry the request."))
        self._reap(slot)

    @staticmethod
    def _unwatch(slot: _Slot, watchdog: threading.Timer) -> None:
        """The job's answer is in (or it ended): its watchdog, even one already firing, kills nothing now."""
        with slot.watch:
            slot.job = None
        watchdog.cancel()

    def _expire(self, slot: _Slot, job: _Job, proc: Any, cpu0: float | None, started: float) -> None:
        """The watchdog: the job ran past its deadline; note whether the worker was computing, kill it."""
        with slot.watch:
            # a watchdog firing as its job answers must not kill the worker (nor its next job)
            if slot.job is not job or slot.proc is not proc:
                return
            cpu1 = _cpu_seconds(proc.pid)
            wall = time.monotonic() - started
            slot.runaway = cpu0 is not None and cpu1 is not None and (cpu1 - cpu0) >= BUSY_FRACTION * wall
            slot.expired = True
            proc.kill()

    def _restart(self, slot: _Slot) -> bool:
        """Replace a dead worker; on failure retry with back-off. False when the pool is closing."""
        if slot.proc is not None:
            log.warning("engine worker %d (pid %s) exited (code %s) while idle; replacing it",
                        slot.index, slot.pid, slot.proc.exitcode)
            self._reap(slot)
        delay = 0.5
        while not self._stop.is_set():
            if slot.state != "failed":  # a slot that failed stays failed until an attempt succeeds
                slot.state = "restarting"
            try:
                self._spawn(slot)
                self._await_ready(slot)
            except Exception as exc:  # noqa: BLE001 - logged; retried after a pause
                slot.state = "failed"
                log.error("engine worker %d could not be restarted: %s", slot.index, exc)
                if all(s.state == "failed" for s in self._slots):
                    self._fail_queued("No engine worker can take work: they cannot be restarted "
                                      "(see the server log); retry later.")
                self._stop.wait(delay)
                delay = min(30.0, delay * 2)
                continue
            self._count("restarts")
            return True
        slot.state = "stopped"
        return False

    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=engine_worker.main, name=f"faceledger-engine-{slot.index}",
                                 args=(child, self.settings, self.max_memory_bytes), daemon=True)
        proc.start()
        child.close()
        slot.proc, slot.conn, slot.pid = proc, parent, proc.pid

    def _await_ready(self, slot: _Slot) -> None:
        """Wait for the worker's models to load; raise what it could not load (e.g. ModelFileError)."""
        assert slot.conn is not None and slot.proc is not None
        wait([slot.conn, slot.proc.sentinel], timeout=START_TIMEOUT_S)
        msg = None
        try:
            if slot.conn.poll():
                msg = slot.conn.recv()
        except (EOFError, OSError):
            msg = None
        if msg is not None and msg[0] == "ready":
            slot.state = "idle"
            return
        self._reap(slot)
        if msg is not None and msg[0] == "init_error":
            if isinstance(msg[1], FaceledgerError):
                raise msg[1]  # e.g. ModelFileError: serve says it in one line, exit 10
            raise EngineUnavailableError(f"An engine worker could not load the engine: {msg[1]}")
        raise EngineUnavailableError(f"Engine worker {slot.index} did not start within {START_TIMEOUT_S:g} s "
                                     "or exited while loading the models.")

    def _stop_worker(self, slot: _Slot) -> None:
        """Ask the worker to exit (it finishes nothing: it is idle), then make sure it has."""
        if slot.conn is not None:
            try:
                slot.conn.send(None)
            except OSError:
                pass
        if slot.proc is not None:
            slot.proc.join(5)
        self._reap(slot)
        slot.state = "stopped" if self._stop.is_set() else "restarting"

    def _reap(self, slot: _Slot) -> None:
        proc, conn = slot.proc, slot.conn
        slot.proc = slot.conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)

    def _fail_queued(self, message: str) -> None:
        """Fail every queued job; stop marks stay queued for the threads still to read them."""
        stops = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stops += 1
            elif job.claim():
                job.future.set_exception(EngineUnavailableError(message))
        if any(t.is_alive() for t in self._threads):
            for _ in range(stops):
                self._queue.put(None)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
