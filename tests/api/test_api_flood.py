"""Unauthenticated or slow load must never starve signed clients; bursts wait instead of failing.

Real sockets against a real uvicorn server on loopback, bounded in count and
time. Floods come from 127.0.0.1 (the signed client's own address) and from
127.0.0.2, so neither the per-address cap nor the global one is what saves the
signed client by accident.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from api_fakes import FakeService, serve
from api_raw import make_client, signed_headers
from botocore.exceptions import ClientError

from faceledger.api import create_app
from faceledger.api.connections import ConnectionLimits
from faceledger.settings import Settings


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


@contextlib.contextmanager
def sockets(url: str, n: int, source: str, first_bytes: bytes = b"") -> Iterator[list[socket.socket]]:
    """``n`` connections from ``source`` that send ``first_bytes`` and then nothing."""
    out: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.settimeout(5)
            s.bind((source, 0))
            s.connect(_address(url))
            if first_bytes:
                s.sendall(first_bytes)
            out.append(s)
        yield out
    finally:
        for s in out:
            s.close()


def closed_by_server(s: socket.socket, wait_s: float = 0.0) -> bool:
    s.settimeout(wait_s or 0.01)
    try:
        return s.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:  # reset
        return True


def timed_call(client: Any) -> float:
    started = time.monotonic()
    client.list_collections()
    return time.monotonic() - started


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"])
def test_idle_socket_flood_does_not_lock_out_signed_clients(source: str) -> None:
    """300 sockets that never send a byte: more than uvicorn's old limit_concurrency of 256."""
    app = create_app(FakeService(), max_inflight=2, max_queue=4)
    # Default caps, and a header timeout far longer than the test: eviction is what saves us.
    with serve(app, ConnectionLimits(header_timeout_s=60)) as url:
        client = make_client(url)
        with sockets(url, 300, source) as flood:
            assert timed_call(client) < 2
            assert timed_call(client) < 2
            # The flood is held to the per-address cap; the rest were closed to make room.
            closed = sum(closed_by_server(s) for s in flood)
            assert closed >= 300 - ConnectionLimits().max_per_address


def test_idle_sockets_past_a_small_cap_evict_each_other_not_the_client() -> None:
    app = create_app(FakeService(), max_inflight=2, max_queue=4)
    limits = ConnectionLimits(max_connections=20, max_per_address=10, header_timeout_s=60)
    with serve(app, limits) as url:
        client = make_client(url)
        with sockets(url, 100, "127.0.0.2") as far, sockets(url, 100, "127.0.0.1") as near:
            assert timed_call(client) < 2
            time.sleep(0.2)
            open_far = sum(not closed_by_server(s) for s in far)
            open_near = sum(not closed_by_server(s) for s in near)
            assert open_far <= 10 and open_near <= 10


def test_bodyless_unsigned_posts_hold_no_slot() -> None:
    """The issue's attack: ``POST /`` with Content-Length: 10 and no body, 60 times."""
    service = FakeService()
    app = create_app(service, max_inflight=4, max_queue=16)
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    with serve(app) as url:
        client = make_client(url)
        with sockets(url, 60, "127.0.0.2", request) as flood:
            for s in flood:  # each is answered at once (no key), not parked on its body
                s.settimeout(5)
                assert s.recv(200).startswith(b"HTTP/1.1 403")
            assert timed_call(client) < 2
            assert app.state.pool.admitted == 0


def test_stalled_signed_body_times_out_and_starves_no_one() -> None:
    """A request with a real key and a fresh date that never sends its (declared 7 MB) body."""
    service = FakeService()
    app = create_app(service, max_inflight=2, max_queue=4, body_timeout_s=1.0,
                     max_buffered_bytes=10_000_000)
    with serve(app) as url:
        body = b'{"MaxResults": 1}'
        headers = signed_headers(url + "/", body, "RekognitionService.ListCollections")
        headers["Content-Length"] = "7000000"
        headers.setdefault("Host", urlsplit(url).netloc)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST / HTTP/1.1\r\n{head}\r\n".encode() + b"{"
        client = make_client(url)
        started = time.monotonic()
        with sockets(url, 40, "127.0.0.2", request) as stalled:
            # Declared sizes reserve nothing: 40 x 7 MB would be far past the 10 MB budget.
            assert timed_call(client) < 2
            answers = [s.recv(300) for s in stalled]
        assert all(a.startswith(b"HTTP/1.1 408") and b"RequestTimeoutException" in a for a in answers), answers[:2]
        assert time.monotonic() - started < 10
        assert app.state.pool.admitted == 0


def test_headers_sent_too_slowly_close_the_connection() -> None:
    app = create_app(FakeService(), max_inflight=1, max_queue=1)
    with serve(app, ConnectionLimits(header_timeout_s=0.5)) as url:
        with sockets(url, 1, "127.0.0.1", b"POST / HTTP/1.1\r\n") as (slow,):
            for _ in range(4):  # a trickle of bytes does not reset the clock
                time.sleep(0.2)
                with contextlib.suppress(OSError):
                    slow.sendall(b"X-Slow: 1\r\n")
            assert closed_by_server(slow, wait_s=2)


def test_default_settings_let_a_burst_of_100_wait_and_complete() -> None:
    """100 concurrent calls with no client retries: with the defaults none is refused."""
    defaults = Settings()
    service = FakeService(sleep_s=0.05)
    app = create_app(service, max_inflight=4, max_queue=defaults.max_queue,
                     admission_wait_s=defaults.admission_wait_s)
    with serve(app) as url:
        clients = [make_client(url) for _ in range(100)]
        barrier = threading.Barrier(100)
        failures: list[str] = []

        def one(c: Any) -> None:
            barrier.wait()
            try:
                c.list_collections()
            except ClientError as exc:
                failures.append(exc.response["Error"]["Code"])

        threads = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert failures == []
    assert service.max_running <= 4


def test_expected_wait_over_the_bound_is_refused_at_once() -> None:
    service = FakeService(sleep_s=0.3)
    app = create_app(service, max_inflight=1, max_queue=100, admission_wait_s=1.0)
    with serve(app) as url:
        make_client(url).list_collections()  # the pool learns a call takes ~0.3 s
        clients = [make_client(url) for _ in range(12)]
        outcomes: list[tuple[str, float]] = []
        lock = threading.Lock()

        def one(c: Any) -> None:
            started = time.monotonic()
            try:
                c.list_collections()
                code = "ok"
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
            with lock:
                outcomes.append((code, time.monotonic() - started))

        threads = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    ok = [t for code, t in outcomes if code == "ok"]
    refused = [t for code, t in outcomes if code == "ThrottlingException"]
    assert len(ok) + len(refused) == 12
    # 1 running + about 3 waiting fit in 1 s of expected work; the rest are told at once.
    assert 2 <= len(ok) <= 6 and len(refused) >= 6
    assert max(refused) < 0.6


def test_a_waiter_is_refused_when_its_deadline_passes() -> None:
    service = FakeService(gate=threading.Event())
    app = create_app(service, max_inflight=1, max_queue=5, admission_wait_s=0.5)
    with serve(app) as url:
        first = threading.Thread(target=make_client(url).list_collections)
        first.start()
        deadline = time.monotonic() + 5
        while service.running == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ClientError) as exc:
            make_client(url).list_collections()
        waited = time.monotonic() - started
        assert service.gate is not None
        service.gate.set()
        first.join(timeout=10)
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    assert 0.9 < waited < 4  # twice the bound: the estimate said 0 s, the deadline is 2 x 0.5 s
    assert app.state.pool.admitted == 0
