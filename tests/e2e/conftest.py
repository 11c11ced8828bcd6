"""A real faceledger server process on a free port, driven by real boto3 and the AWS CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

FACELEDGER = [sys.executable, "-m", "faceledger.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen
    endpoint: str
    data_dir: Path
    key: str
    secret: str
    log: Path

    def client(self, key: str | None = None, secret: str | None = None, **config: object):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "rekognition", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key or self.key, aws_secret_access_key=secret or self.secret,
            config=Config(**config) if config else None,
        )

    def cli(self, *args: str, check: bool = False, key: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the CLI against this server's data dir; ``key`` = (id, secret) to act as another key."""
        env = {**os.environ, "FACELEDGER_DATA_DIR": str(self.data_dir)}
        if key is not None:
            env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
        return subprocess.run([*FACELEDGER, *args], capture_output=True, text=True, env=env, check=check,
                              timeout=300)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reap()

    def crash(self) -> None:
        """SIGKILL the server process, as a crash would, then reap what it leaves behind."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.reap()

    def reap(self) -> None:
        """Engine workers of a killed server outlive it; the server runs in its own session, so end it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def start_server(data_dir: Path, workers: int = 1, extra_env: dict | None = None) -> Server:
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    env = {**os.environ, **(extra_env or {})}
    fh = open(log, "w")
    proc = subprocess.Popen(
        [*FACELEDGER, "serve", "--port", str(port), "--data", str(data_dir), "--workers", str(workers)],
        stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"server did not start: {log.read_text()}")
    prof = json.loads((data_dir / "profile.json").read_text())
    return Server(proc, endpoint, data_dir, prof["access_key_id"], prof["secret_access_key"], log)


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("svc") / "data"
    srv = start_server(data, workers=2)
    yield srv
    srv.stop()
