"""The leases on the video jobs this process holds: renewed in the background, lost ones flagged.

A video job belongs to the process holding its lease (``video_job:<id>`` in
the store, service/turns.py). Start* claims it in the transaction that
creates the job; this class renews every held lease every third of
``ttl_s`` and, on the same tick, calls ``tick`` (the job runner checkpoints
its running jobs and adopts orphans: jobs whose holder died or whose lease
expired). A lease that could not be renewed was taken over by another
process: the job is flagged lost and its runner stops without writing.
This module knows nothing of what a job does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from . import turns
from .core import Service

log = logging.getLogger("faceledger.video")


def lease_name(job_id: str) -> str:
    return f"video_job:{job_id}"


class JobLeases:
    def __init__(self, svc: Service, ttl_s: float, tick: Callable[[], None]) -> None:
        self.svc, self.ttl_s, self._tick = svc, float(ttl_s), tick
        self._held: set[str] = set()
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="faceledger-video-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def holds(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._held

    def lost(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._lost

    def hold(self, job_id: str) -> None:
        """Note a lease already claimed (Start* claims it inside its own transaction)."""
        with self._lock:
            self._held.add(job_id)
            self._lost.discard(job_id)

    def take(self, job_id: str) -> bool:
        """Claim an orphaned job's lease; False when another process holds it (alive, unexpired)."""
        if not turns.take_over(self.svc, lease_name(job_id), self.ttl_s):
            return False
        self.hold(job_id)
        return True

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.discard(job_id)
            self._lost.discard(job_id)
        turns.release(self.svc, lease_name(job_id))

    def renew_all(self) -> None:
        for job_id in self.held():
            if not turns.renew(self.svc, lease_name(job_id), self.ttl_s):
                log.warning("video job %s: lease lost to another process; stopping here", job_id)
                with self._lock:
                    self._held.discard(job_id)
                    self._lost.add(job_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.renew_all()
                self._tick()
            except Exception:  # a busy or failing store must not end renewal for the life of the process
                log.exception("video job leases: renewal failed; trying again in %.1f s", self.ttl_s / 3)
