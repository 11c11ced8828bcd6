"""A real ``faceledger serve`` process on a free port: start it, wait for /health, account its CPU, stop it.

Shared by the API benchmarks (``evaluation.apibench``, ``scripts/bench_*``) and
the end-to-end tests (``tests/e2e/conftest.py``), so a benchmark measures the
server exactly as the tests start it. Linux's /proc gives the CPU figures;
elsewhere they are None.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FaceledgerError

SERVE = [sys.executable, "-m", "faceledger.cli.main", "serve"]


class BenchSetupError(FaceledgerError):
    """The benchmark could not be set up (no images, server would not start...)."""

    code = "BenchSetupError"
    exit_code = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``faceledger serve`` subprocess and the admin key it wrote to its profile."""

    proc: subprocess.Popen
    endpoint: str
    key: str
    secret: str
    region: str
    log: Path

    def client(self, **config: Any) -> Any:
        """A new boto3 Rekognition client on its own session (safe to use in one thread)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "rekognition", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            config=Config(retries={"mode": "standard"}, **config),
        )

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process and its live descendants (Linux only)."""
        table = _proc_table()
        if self.proc.pid not in table:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        return sum(table[p][1] for p in [self.proc.pid, *_descendants(table, self.proc.pid)]) / tick

    def stop(self) -> None:
        """Stop the server and every process under it.

        SIGINT, not SIGTERM: uvicorn re-raises the signal it caught once it
        has shut down, and a re-raised SIGTERM ends the process before
        ``serve`` closes its engine pool, leaving the forkserver and the
        workers behind; a re-raised SIGINT is a KeyboardInterrupt, which
        unwinds through ``serve``'s ``finally``. Whatever is still left of the
        process tree afterwards is ended by pid.
        """
        left = _descendants(_proc_table(), self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in left if p in _proc_table()]
            for p in alive:
                with contextlib.suppress(OSError):
                    os.kill(p, sig)
            deadline = time.monotonic() + 5
            while alive and time.monotonic() < deadline:
                time.sleep(0.1)
                alive = [p for p in alive if p in _proc_table()]
            if not alive:
                break


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, user + system CPU ticks) of live processes, from /proc; {} elsewhere."""
    out: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie is already gone
            continue
        out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def machine_busy_s() -> float | None:
    """CPU seconds all processes on this machine have used since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: everything but idle and iowait
    busy = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
    return busy / os.sysconf("SC_CLK_TCK")


def other_cpu(busy0: float | None, busy1: float | None, ours: float | None) -> float | None:
    """CPU seconds the rest of the machine used meanwhile (what disturbs a wall-clock figure)."""
    if busy0 is None or busy1 is None or ours is None:
        return None
    return round(max(0.0, busy1 - busy0 - ours), 3)


def _descendants(table: dict[int, tuple[int, int]], pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [c for c, (ppid, _) in table.items() if ppid == parent]
        out.extend(kids)
        todo.extend(kids)
    return out


def spawn(data_dir: Path, workers: int, log: Path, *, env: Mapping[str, str] | None = None,
          new_session: bool = False, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``faceledger serve`` on ``port`` (a free one by default), its output in ``log``."""
    port = port or free_port()
    cmd = [*SERVE, "--port", str(port), "--data", str(data_dir), "--workers", str(workers)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(env) if env else None,
                                start_new_session=new_session)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, endpoint: str, log: Path, timeout_s: float = 180) -> None:
    """Return once ``/health`` answers 200; BenchSetupError (with the log's tail) if it exits or never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise BenchSetupError(f"the server exited with code {proc.returncode}: {tail(log)}")
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise BenchSetupError(f"the server did not answer /health in {timeout_s:.0f} s: {tail(log)}")
        time.sleep(0.2)


def admin_key(data_dir: Path) -> tuple[str, str, str]:
    """(access key id, secret, region) of the admin key ``serve`` wrote to the profile."""
    prof = json.loads((data_dir / "profile.json").read_text())
    return prof["access_key_id"], prof["secret_access_key"], prof.get("region") or "us-east-1"


def start_server(data_dir: Path, workers: int, log: Path, timeout_s: float = 180) -> ServerProcess:
    """Start ``faceledger serve`` on a free port and wait until ``/health`` answers."""
    proc, endpoint = spawn(data_dir, workers, log)
    wait_healthy(proc, endpoint, log, timeout_s)
    key, secret, region = admin_key(data_dir)
    return ServerProcess(proc, endpoint, key, secret, region, log)


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


