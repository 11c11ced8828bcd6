"""``serve --processes N``: one listening socket, N API processes accepting on it, kept running.

The supervisor binds the port once and starts N ordinary ``faceledger serve``
processes that inherit the socket (``--listen-fd``); the kernel hands each new
connection to whichever process accepts first, so a busy process takes fewer.
Each API process opens the store and its own engine pool (``--workers`` each,
by default the cores shared out among them), so N processes cost N times the
engine memory. The first process starts alone (it migrates the catalog and
notes the policy and signing key); the others start once it answers
``/health``. A process that exits unexpectedly is started again after a
second; one that keeps dying (5 times in 60 s) stops the whole service.
SIGTERM or SIGINT is passed on as SIGINT (a graceful stop), and whatever is
still running after the grace period is killed. Cross-process state lives in
the store (docs/operations.md, "Several API processes"). This module holds no
business rules and opens no store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field

from ..errors import ServiceUnavailableError as SupervisorError

RESTART_DELAY_S = 1.0
CRASH_LIMIT, CRASH_WINDOW_S = 5, 60.0
GRACE_S = 40.0  # uvicorn's graceful shutdown is 30 s; then the engines close


def listen(host: str, port: int) -> socket.socket:
    """The one listening socket every API process accepts on (inheritable)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SupervisorError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class Slot:
    number: int
    proc: subprocess.Popen | None = None
    deaths: deque[float] = field(default_factory=deque)


class Supervisor:
    def __init__(self, child_args: list[str], processes: int, sock: socket.socket, endpoint: str) -> None:
        self.child_args, self.sock, self.endpoint = child_args, sock, endpoint
        self.slots = [Slot(i) for i in range(processes)]
        self._stopping = False

    def _spawn(self, slot: Slot) -> None:
        fd = self.sock.fileno()
        cmd = [sys.executable, "-m", "faceledger.cli.main", "serve", *self.child_args, "--listen-fd", str(fd)]
        slot.proc = subprocess.Popen(cmd, pass_fds=(fd,), env={**os.environ, "FACELEDGER_API_PROCESS": str(slot.number)})

    def _wait_healthy(self, slot: Slot, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping:
            if slot.proc is None or slot.proc.poll() is not None:
                raise SupervisorError("The first API process exited during start-up; see its messages above.")
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        if not self._stopping:
            raise SupervisorError(f"The first API process did not answer /health within {timeout_s:.0f} s.")

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._spawn(self.slots[0])
            self._wait_healthy(self.slots[0])
            for slot in self.slots[1:]:
                self._spawn(slot)
            while not self._stopping:
                time.sleep(0.2)
                for slot in self.slots:
                    if slot.proc is not None and slot.proc.poll() is not None and not self._stopping:
                        self._restart(slot)
            return 0
        finally:
            self._stop_all()

    def _restart(self, slot: Slot) -> None:
        assert slot.proc is not None
        now = time.monotonic()
        slot.deaths.append(now)
        while slot.deaths and slot.deaths[0] < now - CRASH_WINDOW_S:
            slot.deaths.popleft()
        print(f"faceledger: API process {slot.number} (pid {slot.proc.pid}) exited with code "
              f"{slot.proc.returncode}; starting it again", file=sys.stderr, flush=True)
        if len(slot.deaths) >= CRASH_LIMIT:
            raise SupervisorError(f"API process {slot.number} exited {CRASH_LIMIT} times within "
                                  f"{CRASH_WINDOW_S:.0f} s; stopping the service.")
        time.sleep(RESTART_DELAY_S)
        self._spawn(slot)

    def _stop_all(self) -> None:
        live = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + GRACE_S
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.sock.close()
