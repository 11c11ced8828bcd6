"""A real faceledger server process on a free port, driven by real boto3 and the AWS CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from faceledger.evaluation import server as serve_process

FACELEDGER = [sys.executable, "-m", "faceledger.cli.main"]


free_port = serve_process.free_port


@dataclass
class Server:
    proc: subprocess.Popen
    endpoint: str
    data_dir: Path
    key: str
    secret: str
    log: Path
    store: str | None = None  # FACELEDGER_STORE of the server (None: the data directory's SQLite file)

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
        if self.store:
            env["FACELEDGER_STORE"] = self.store
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


def start_server(data_dir: Path, workers: int = 1, extra_env: dict | None = None, store: str | None = None) -> Server:
    """``faceledger serve`` as the benchmarks start it (evaluation/server.py), in its own session.

    ``store``: its FACELEDGER_STORE (a ``postgresql://`` URL from the ``store`` fixture; None: SQLite).
    """
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    env = {**os.environ, **(extra_env or {})}
    if store:
        env["FACELEDGER_STORE"] = store
    proc, endpoint = serve_process.spawn(data_dir, workers, log, env=env, new_session=True, port=port)
    serve_process.wait_healthy(proc, endpoint, log, timeout_s=120)
    key, secret, _ = serve_process.admin_key(data_dir)
    return Server(proc, endpoint, data_dir, key, secret, log, store)


STORES = ["sqlite", "postgresql"]
# On a module or test: run it against both stores (the ``store`` fixture; issue #14).
both_stores = pytest.mark.parametrize("store", STORES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def store(request):  # type: ignore[no-untyped-def]
    """None for the embedded SQLite store (the default), or a fresh PostgreSQL database's URL."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return request.getfixturevalue("pg_server").fresh(f"{request.node.nodeid}-{request.param}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, store):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("svc") / "data"
    srv = start_server(data, workers=2, store=store)
    yield srv
    srv.stop()
