"""A dict-backed fake of the service seam, and a real uvicorn server to put it behind.

The fake knows three operations well enough for transport tests
(CreateCollection, ListCollections, DetectFaces), can be told to sleep in
dispatch (to saturate the pool) and records every call it receives. It holds
none of the real service's rules. Also importable from a subprocess
(``python -m api_fakes PORT``) for the graceful-shutdown test.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from faceledger.api import create_app
from faceledger.api.connections import ConnectionLimits
from faceledger.api.server import config
from faceledger.errors import ResourceAlreadyExistsError, ResourceNotFoundError

ACCESS_KEY = "AKIDFACELEDGERTEST01"
SECRET = "s3cr3t/with+chars=="
REVOKED_KEY = "AKIDFACELEDGERREVOKED"

DETECTED_FACE: dict[str, Any] = {
    "BoundingBox": {"Width": 0.25, "Height": 0.3, "Left": 0.4, "Top": 0.2},
    "Landmarks": [
        {"Type": "eyeLeft", "X": 0.45, "Y": 0.3},
        {"Type": "eyeRight", "X": 0.55, "Y": 0.3},
    ],
    "Pose": {"Roll": 1.5, "Yaw": -3.0, "Pitch": 2},
    "Quality": {"Brightness": 70.0, "Sharpness": 88.5},
    "Confidence": 99.9,
    "AgeRange": None,  # absent members must be omitted on the wire
}


@dataclass(frozen=True)
class FakePrincipal:
    access_key_id: str
    secret: str
    role: str = "admin"
    revoked: bool = False


@dataclass
class FakeService:
    keys: dict[str, FakePrincipal] = field(
        default_factory=lambda: {
            ACCESS_KEY: FakePrincipal(ACCESS_KEY, SECRET),
            REVOKED_KEY: FakePrincipal(REVOKED_KEY, SECRET, revoked=True),
        }
    )
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    sleep_s: float = 0.0
    gate: threading.Event | None = None  # when set, dispatch waits for it
    marker: str | None = None  # when set, dispatch creates this file on entry
    running: int = 0
    max_running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup_key(self, access_key_id: str) -> FakePrincipal | None:
        return self.keys.get(access_key_id)

    def dispatch(
        self, operation: str, params: dict[str, Any], principal: Any, context: dict[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            self.calls.append((operation, params, context))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.marker:
                Path(self.marker).touch()
            if self.gate is not None:
                self.gate.wait(timeout=10)
            if self.sleep_s:
                time.sleep(self.sleep_s)
            return self._answer(operation, params, context)
        finally:
            with self._lock:
                self.running -= 1

    def _answer(
        self, operation: str, params: dict[str, Any], context: dict[str, Any]
    ) -> dict[str, Any]:
        if operation == "CreateCollection":
            cid = params["CollectionId"]
            if cid in self.collections:
                raise ResourceAlreadyExistsError(f"The collection id: {cid} already exists.")
            self.collections[cid] = {"CreatedAt": time.time()}
            return {
                "StatusCode": 200,
                "CollectionArn": f"arn:aws:rekognition:{context['region']}:000000000000:collection/{cid}",
                "FaceModelVersion": "dlib-resnet-v1",
            }
        if operation == "ListCollections":
            ids = sorted(self.collections)
            return {
                "CollectionIds": ids,
                "FaceModelVersions": ["dlib-resnet-v1"] * len(ids),
                "NextToken": None,
            }
        if operation == "DetectFaces":
            assert isinstance(params["Image"]["Bytes"], bytes)
            return {"FaceDetails": [DETECTED_FACE], "OrientationCorrection": None}
        if operation == "DeleteCollection" and params["CollectionId"] == "boom":
            raise RuntimeError("secret internal detail that must not leak")
        if operation == "DescribeCollection":
            raise ResourceNotFoundError(
                f"The collection id: {params['CollectionId']} does not exist"
            )
        raise NotImplementedError(operation)


@contextlib.contextmanager
def serve(app: Any, limits: ConnectionLimits | None = None) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server on a free port in a thread; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        config(app, "127.0.0.1", port, log_level="warning", graceful_timeout_s=5, limits=limits)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str]) -> None:
    """Serve on port ``argv[0]`` a fake whose dispatch touches ``argv[2]``, then sleeps ``argv[1]`` s."""
    from faceledger.api import run

    service = FakeService(sleep_s=float(argv[1]), marker=argv[2])
    app = create_app(service, max_inflight=2, max_queue=2)
    run(app, "127.0.0.1", int(argv[0]), graceful_timeout_s=10, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
