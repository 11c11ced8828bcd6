"""Serve the Rekognition transport with uvicorn until SIGTERM or SIGINT.

uvicorn owns the signals: on the first SIGTERM/SIGINT it stops accepting
connections, lets open requests finish (up to ``graceful_timeout_s``), then
runs the app's lifespan shutdown, which waits for the dispatch pool to drain.
This module only configures that; it must not build the service or read
settings itself (the caller passes a ready app).
"""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp


def config(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    graceful_timeout_s: int = 30,
    limit_concurrency: int | None = 256,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn settings faceledger runs with (exposed so tests can serve the same way)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        # Bounds open connections, and with them the request bodies held in memory.
        limit_concurrency=limit_concurrency,
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
    limit_concurrency: int | None = 256,
    log_level: str = "info",
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down gracefully. Blocks."""
    server = uvicorn.Server(
        config(
            app,
            host,
            port,
            graceful_timeout_s=graceful_timeout_s,
            limit_concurrency=limit_concurrency,
            log_level=log_level,
        )
    )
    server.run()
