"""The Rekognition JSON 1.1 transport: a Starlette app in front of the service layer.

Every ``POST`` (on any path; the operation comes from ``X-Amz-Target``) goes
through the same steps, cheapest refusal first: check the Authorization
header, key and date from the headers alone; read the body (capped in size
and time, counted against a memory budget: api/body.py); verify the
signature; resolve the operation, check the content type, parse and validate
the JSON against botocore's model; wait for an engine slot (api/pool.py:
a queue with a deadline); run ``service.dispatch``; encode the result or the
error. Connection-level caps (idle sockets, per-address) are in
api/connections.py. ``GET /health`` (liveness and the engine's
state) and ``GET /ready`` (503 while no engine worker can take work or the store does not answer) answer
without authentication.

This module holds no business rules: it never decides what a principal may
do, what a default is, or what an operation returns. Everything blocking
(key lookup, hashing, JSON, validation, dispatch) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from faceledger.api import wire
from faceledger.api.body import BodyBudget, read_body
from faceledger.api.contract import Principal, Service
from faceledger.api.errors import UnknownOperationError
from faceledger.api.model import SUPPORTED_OPERATIONS, validate_request
from faceledger.api.pool import BoundedPool
from faceledger.api.sigv4 import (
    Prechecked,
    VerifiedRequest,
    WireRequest,
    precheck,
    verify_signature,
)
from faceledger.errors import FaceledgerError, InvalidParameterError, ThrottlingError

log = logging.getLogger("faceledger.api")

TARGET_PREFIX = "RekognitionService."
OWN_PREFIX = "FaceledgerService."


def create_app(
    service: Service,
    *,
    max_body_bytes: int = 7_000_000,
    max_inflight: int,
    max_queue: int,
    admission_wait_s: float = 20.0,
    body_timeout_s: float = 20.0,
    max_buffered_bytes: int = 256_000_000,
    clock_skew_s: float = 900,
) -> Starlette:
    """Build the ASGI app. ``max_body_bytes`` fits a 5 MB image base64-encoded, plus slack."""
    pool = BoundedPool(max_inflight, max_queue, admission_wait_s)
    budget = BodyBudget(max_buffered_bytes)

    def precheck_headers(request: Request) -> Prechecked:
        return precheck(_wire_request(request, b""), service.lookup_key, clock_skew_s=clock_skew_s)

    def prepare(
        request: Request, body: bytes, pre: Prechecked, request_id: str
    ) -> tuple[str, dict[str, Any], Principal, dict[str, Any]]:
        verified = verify_signature(_wire_request(request, body), pre)
        operation, own = _operation(request, getattr(service, "own_operations", frozenset()))
        _check_content_type(request)
        params = _own_params(_parse_json(body)) if own else validate_request(operation, _parse_json(body))
        return operation, params, verified.principal, _context(request, verified, request_id)

    async def rekognition(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        operation = "-"
        body_read = False
        try:
            # Headers only: no body buffer or engine slot for a request without a live key.
            pre = await asyncio.to_thread(precheck_headers, request)
            with budget.hold() as hold:
                body = await read_body(request, max_body_bytes, body_timeout_s, hold)
                body_read = True
                operation, params, principal, context = await asyncio.to_thread(
                    prepare, request, body, pre, request_id
                )
                del body
                result = await pool.run(service.dispatch, operation, params, principal, context)
                if not isinstance(result, dict):
                    raise TypeError(f"dispatch returned {type(result).__name__}, not dict")
                response = await asyncio.to_thread(wire.success, result, request_id)
        except FaceledgerError as exc:
            response = wire.error(exc, request_id)
            if exc.http_status >= 500 and not isinstance(exc, ThrottlingError):
                log.warning(
                    "request %s %s failed: %s: %s", request_id, operation, exc.code, exc.message
                )
        except ClientDisconnect:
            log.info("request %s: client went away before the body arrived", request_id)
            return Response(status_code=400)
        except Exception:
            log.exception("request %s %s: unexpected error", request_id, operation)
            response = wire.internal_error(request_id)
        if not body_read:
            # The rest of the body may still be on its way; do not parse it as the next request.
            response.headers["connection"] = "close"
        log.info(
            "request %s %s -> %d in %.1f ms",
            request_id,
            operation,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def engine_state() -> dict[str, Any] | None:
        state = getattr(service, "engine_state", None)
        return state() if callable(state) else None

    async def health(request: Request) -> Response:
        """Liveness, with the engine's state; 503 only when no engine worker can be restarted."""
        engine = engine_state()
        if engine is None:
            return JSONResponse({"status": "ok"})
        live = bool(engine.get("live", True))
        return JSONResponse({"status": engine.get("status", "ok"), "engine": engine},
                            status_code=200 if live else 503)

    def store_state() -> dict[str, Any] | None:
        state = getattr(service, "store_state", None)
        return state() if callable(state) else None

    async def ready(request: Request) -> Response:
        """Readiness: 503 while no engine worker can take work, or while the store does not answer."""
        engine = engine_state()
        store = await asyncio.to_thread(store_state)  # a round trip to PostgreSQL: off the event loop
        ok = (engine is None or bool(engine.get("ready", True))) and (store is None or bool(store["reachable"]))
        body: dict[str, Any] = {"ready": ok}
        if engine is not None:
            body["engine"] = engine
        if store is not None:
            body["store"] = store
        return JSONResponse(body, status_code=200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            # uvicorn has already waited for open requests; this waits for any
            # dispatch whose client went away but whose work is still running.
            await asyncio.to_thread(pool.shutdown)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/{path:path}", rekognition, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.pool = pool
    return app


def _wire_request(request: Request, body: bytes) -> WireRequest:
    scope = request.scope
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"], safe="/~%")
    path = path.split("?", 1)[0]
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    return WireRequest(
        method=scope["method"],
        raw_path=path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
    )


def _operation(request: Request, own_operations: frozenset[str]) -> tuple[str, bool]:
    """(operation, is faceledger's own) from X-Amz-Target."""
    target = request.headers.get("x-amz-target", "")
    prefix, _, operation = target.partition(".")
    if f"{prefix}." == TARGET_PREFIX and operation in SUPPORTED_OPERATIONS:
        return operation, False
    if f"{prefix}." == OWN_PREFIX and operation in own_operations:
        return operation, True
    raise UnknownOperationError(
        f"Unknown operation {target!r}; expected X-Amz-Target: {TARGET_PREFIX}<Operation> "
        f"or {OWN_PREFIX}<Operation>."
    )


def _own_params(body: Any) -> dict[str, Any]:
    """faceledger's own operations take a flat JSON object; the service checks its members."""
    if not isinstance(body, dict):
        raise InvalidParameterError("The request body must be a JSON object.")
    return body


def _check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != wire.CONTENT_TYPE:
        raise InvalidParameterError(
            f"Content-Type must be {wire.CONTENT_TYPE}, not {media_type!r}."
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidParameterError(f"The request body is not valid JSON: {exc}") from exc
    # A lone surrogate can only come from a \uD8xx-style escape (raw ones fail to decode);
    # let none in: no later layer could store, log or echo it as UTF-8.
    if (b"\\ud" in body or b"\\uD" in body) and not _all_text_is_unicode(value):
        raise InvalidParameterError(
            "The request body is not valid JSON: a string contains a lone surrogate (\\uD800-\\uDFFF)."
        )
    return value


def _all_text_is_unicode(value: Any) -> bool:
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return True


def _context(request: Request, verified: VerifiedRequest, request_id: str) -> dict[str, Any]:
    """Request metadata for ``dispatch`` (keys documented in contract.RequestContext)."""
    headers = request.headers
    faceledger_headers = {
        name: value for name, value in headers.items() if name.startswith("x-faceledger-")
    }
    return {
        "request_id": request_id,
        "remote": request.client.host if request.client else None,
        "invocation_id": headers.get("amz-sdk-invocation-id"),
        "region": verified.region,
        "user_agent": headers.get("user-agent"),
        "purpose": faceledger_headers.get("x-faceledger-purpose"),
        "case": faceledger_headers.get("x-faceledger-case"),
        "faceledger_headers": faceledger_headers,
        "signed_headers": list(verified.signed_headers),
        "signature": verified.signature,
    }
