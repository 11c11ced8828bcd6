"""Encode service results and errors as AWS JSON 1.1 responses.

Success: HTTP 200, the result as JSON with absent (None) members omitted,
``bytes`` as base64 and datetimes as epoch seconds. Error: the error's
``http_status`` and ``{"__type", "Code", "Message"}`` plus the
``x-amzn-ErrorType`` header (boto3 reads the code from ``__type``). Both carry
``x-amzn-RequestId``.

SDKs drop response members their model does not know, so what a caller needs
from a result's ``Faceledger`` member (the threshold actually applied and
whether it was raised, gallery size, expected false candidates, search id,
scoring) is also sent as ``x-faceledger-*`` headers, which every SDK exposes
(boto3: ``ResponseMetadata.HTTPHeaders``).

This module turns values into bytes; it must not decide which error a
situation deserves, and it never puts a traceback on the wire.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from faceledger.errors import FaceledgerError

CONTENT_TYPE = "application/x-amz-json-1.1"
GENERIC_INTERNAL_MESSAGE = (
    "An internal error occurred; the request id identifies it in the server log."
)


def to_wire(value: Any) -> Any:
    """Make a service result JSON-ready: drop None members, base64 bytes, epoch datetimes."""
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.timestamp()
    return value


def _array_scalar(value: Any) -> Any:
    # numpy scalars and arrays (from the engine) know how to become plain Python.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ``Faceledger`` member -> response header (docs/operations.md, "Response headers").
HEADERS = {
    "ThresholdApplied": "x-faceledger-threshold-applied",
    "ThresholdRequested": "x-faceledger-threshold-requested",
    "ThresholdFloor": "x-faceledger-threshold-floor",
    "ThresholdRaised": "x-faceledger-threshold-raised",
    "ThresholdFalseMatchRate": "x-faceledger-threshold-fmr",
    "GallerySize": "x-faceledger-gallery-size",
    "ExpectedFalseCandidates": "x-faceledger-expected-false-candidates",
    "SearchId": "x-faceledger-search-id",
    "Purpose": "x-faceledger-purpose",
    "Investigative": "x-faceledger-investigative",
    "ScoreNormalization": "x-faceledger-scoring",
    "CohortSize": "x-faceledger-cohort-size",
    "CalibrationVersion": "x-faceledger-calibration-version",
    "BeyondCalibration": "x-faceledger-beyond-calibration",
    "Extrapolated": "x-faceledger-extrapolated",
    "SearchExact": "x-faceledger-search-exact",
    "RecallEstimate": "x-faceledger-recall-estimate",
}


# Visible ASCII but "%": what a header value may hold as is (RFC 9110 field-vchar, SP inside).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6)) if abs(value) >= 1e-3 or value == 0 else f"{value:.6g}"
    # Strings (a policy's purpose name) may hold CR/LF or non-ASCII: percent-encode them (UTF-8)
    # so they can neither split the header block nor fail latin-1 encoding with a 500.
    return quote(str(value).strip(), safe=_HEADER_SAFE)


def faceledger_headers(result: dict[str, Any]) -> dict[str, str]:
    """The ``x-faceledger-*`` headers for ``result``'s ``Faceledger`` member (none without one)."""
    extra = result.get("Faceledger")
    if not isinstance(extra, dict):
        return {}
    return {header: _header_value(extra[member]) for member, header in HEADERS.items()
            if extra.get(member) is not None}


def success(result: dict[str, Any], request_id: str) -> Response:
    """HTTP 200 with the JSON-encoded ``result`` and its ``x-faceledger-*`` headers."""
    body = json.dumps(
        to_wire(result),
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_array_scalar,
    )
    return Response(
        body.encode("utf-8"),
        status_code=200,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, **faceledger_headers(result)},
    )


def error(exc: FaceledgerError, request_id: str) -> Response:
    """The AWS JSON error body for ``exc``, with its own HTTP status."""
    return error_response(exc.code, exc.message, exc.http_status, request_id)


def error_response(code: str, message: str, status: int, request_id: str) -> Response:
    body = json.dumps({"__type": code, "Code": code, "Message": message}, ensure_ascii=False)
    return Response(
        body.encode("utf-8"),
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code},
    )


def internal_error(request_id: str) -> Response:
    """500 InternalServerError with a generic message (the details stay in the log)."""
    return error_response("InternalServerError", GENERIC_INTERNAL_MESSAGE, 500, request_id)
