"""Serve the Rekognition transport with uvicorn until SIGTERM or SIGINT.

uvicorn owns the signals: on the first SIGTERM/SIGINT it stops accepting
connections, lets open requests finish (up to ``graceful_timeout_s``), then
runs the app's lifespan shutdown, which waits for the dispatch pool to drain.
This module only configures that; it must not build the service or read
settings itself (the caller passes a ready app and its connection limits).
"""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp

from faceledger.api.connections import ConnectionLimits, protocol_class


def config(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    graceful_timeout_s: int = 30,
    limits: ConnectionLimits | None = None,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn settings faceledger runs with (exposed so tests can serve the same way)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # Connection caps that idle sockets cannot exhaust (uvicorn's limit_concurrency
        # counts idle connections, so a few hundred of them would 503 every real client).
        http=protocol_class(limits or ConnectionLimits()),  # type: ignore[arg-type]
        limit_concurrency=None,
        timeout_graceful_shutdown=graceful_timeout_s,
        timeout_keep_alive=5,
        # Never trust X-Forwarded-For by default: the ledger records the peer address.
        proxy_headers=False,
        server_header=False,
        log_level=log_level,
    )


def run(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8085,
    *,
    graceful_timeout_s: int = 30,
    limits: ConnectionLimits | None = None,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down gracefully. Blocks.

    ``sock``: an already listening socket to accept on instead of binding ``host:port``
    (``serve --processes N``: the supervisor binds once and every API process accepts on it).
    """
    server = uvicorn.Server(
        config(app, host, port, graceful_timeout_s=graceful_timeout_s, limits=limits,
               log_level=log_level)
    )
    server.run(sockets=[sock] if sock is not None else None)
