"""The transport limits reach ``faceledger serve`` from its settings (a real server process)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from .conftest import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_raw import signed_headers  # noqa: E402


def test_serve_applies_the_connection_body_and_header_limits(tmp_path: Path) -> None:
    env = {"FACELEDGER_MAX_CONNECTIONS_PER_ADDRESS": "8", "FACELEDGER_BODY_TIMEOUT_S": "1",
           "FACELEDGER_HEADER_TIMEOUT_S": "1.5"}
    srv = start_server(tmp_path / "data", workers=1, extra_env=env)
    netloc = urlsplit(srv.endpoint).netloc
    host, port = netloc.split(":")
    idle: list[socket.socket] = []
    try:
        for _ in range(40):
            s = socket.create_connection((host, int(port)), timeout=5, source_address=("127.0.0.2", 0))
            idle.append(s)
        time.sleep(0.3)
        rek = srv.client()
        assert rek.list_collections()["CollectionIds"] == []
        still_open = 0
        for s in idle:
            s.setblocking(False)
            try:
                still_open += s.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
        assert still_open <= 8

        body = b"{}"
        headers = signed_headers(srv.endpoint + "/", body, "RekognitionService.ListCollections",
                                 key=srv.key, secret=srv.secret)
        headers.update({"Host": netloc, "Content-Length": "1000"})
        stalled = socket.create_connection((host, int(port)), timeout=10)
        started = time.monotonic()
        stalled.sendall(b"POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
                        + b"\r\n{")
        answer = stalled.recv(500)
        assert answer.startswith(b"HTTP/1.1 408") and b"RequestTimeoutException" in answer
        assert 0.8 < time.monotonic() - started < 5
        stalled.close()

        silent = socket.create_connection((host, int(port)), timeout=10)
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed for sending no headers
        assert 1.2 < time.monotonic() - started < 5
        silent.close()
    finally:
        for s in idle:
            s.close()
        srv.stop()
