"""Rekognition's request and response shapes, taken from botocore's own service model.

The model (``botocore/data/rekognition/2016-06-27/service-2.json``) is loaded
once, lazily, and never retyped here. :func:`validate_request` turns a decoded
JSON body into the ``params`` the service layer receives: every constraint of
the input shape checked (required, types, lengths, ranges, enums, patterns),
blobs base64-decoded to ``bytes``, integers in float members turned into
floats, JSON ``null`` members dropped. :func:`check_response` is the mirror
image for tests.

Choices (documented in the report and docs):
- Unknown members and wrong JSON types answer ``InvalidParameterException``
  (AWS itself answers ``SerializationException`` for some of these, but that
  code is not modelled, so SDKs could not map it to a typed exception).
- Image rules that are about the wire only: exactly one of ``Image.Bytes`` or
  ``Image.S3Object``; ``Bytes`` over the model's 5 MB → ``ImageTooLargeException``;
  empty ``Bytes`` → ``InvalidImageFormatException``. Whether the bytes decode
  to a picture is the service's business, not this module's.

This module holds no business rules (defaults, thresholds, policy).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from faceledger.api.errors import UnknownOperationError
from faceledger.api.patterns import compile_pattern
from faceledger.errors import ImageTooLargeError, InvalidImageError, InvalidParameterError

SUPPORTED_OPERATIONS: tuple[str, ...] = (
    "CreateCollection",
    "DescribeCollection",
    "ListCollections",
    "DeleteCollection",
    "DetectFaces",
    "CompareFaces",
    "IndexFaces",
    "ListFaces",
    "DeleteFaces",
    "SearchFaces",
    "SearchFacesByImage",
    "CreateUser",
    "DeleteUser",
    "ListUsers",
    "AssociateFaces",
    "DisassociateFaces",
    "SearchUsers",
    "SearchUsersByImage",
    "StartFaceDetection",
    "GetFaceDetection",
    "StartFaceSearch",
    "GetFaceSearch",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)
supported_operations: list[str] = list(SUPPORTED_OPERATIONS)

_INT_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# A timestamp above this is almost surely milliseconds, which makes boto3 raise.
_MAX_EPOCH_SECONDS = 1e11


@functools.cache
def service_model() -> dict[str, Any]:
    """botocore's Rekognition service model (loaded on first use, then cached)."""
    from botocore.loaders import Loader

    model: dict[str, Any] = Loader().load_service_model("rekognition", "service-2")
    return model


def shape(name: str) -> dict[str, Any]:
    """One shape of the model by name."""
    result: dict[str, Any] = service_model()["shapes"][name]
    return result


def operation_shape(operation: str, direction: str) -> str | None:
    """The input or output shape name of ``operation`` (None when the operation has none)."""
    if operation not in SUPPORTED_OPERATIONS:
        raise UnknownOperationError(f"Unknown operation: {operation!r}")
    ref = service_model()["operations"][operation].get(direction)
    return None if ref is None else str(ref["shape"])


def validate_request(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Check ``body`` against ``operation``'s input shape; return the service's params.

    Raises UnknownOperationError, InvalidParameterError, ImageTooLargeError or
    InvalidImageError.
    """
    name = operation_shape(operation, "input")
    if not isinstance(body, dict):
        raise InvalidParameterError("The request body must be a JSON object.")
    if name is None:
        if body:
            raise InvalidParameterError(f"{operation} takes no parameters.")
        return {}
    walker = _Walker(output=False)
    params = walker.walk(name, body, "")
    if walker.problems:
        count = len(walker.problems)
        noun = "error" if count == 1 else "errors"
        raise InvalidParameterError(
            f"{count} validation {noun} detected: " + "; ".join(walker.problems[:10])
        )
    assert isinstance(params, dict)
    return params


def check_response(operation: str, response: dict[str, Any], *, allow_extra: bool = False) -> None:
    """Raise ValueError listing every way ``response`` breaks ``operation``'s output shape.

    Blobs may be ``bytes``, timestamps numbers (epoch seconds) or datetimes.
    Members the model does not know are problems unless ``allow_extra``.
    """
    name = operation_shape(operation, "output")
    if name is None:
        if response:
            raise ValueError(f"{operation} returns no members, got {sorted(response)}")
        return
    walker = _Walker(output=True, allow_extra=allow_extra)
    walker.walk(name, response, "")
    if walker.problems:
        raise ValueError(f"{operation} response: " + "; ".join(walker.problems))


def _lower_first(member: str) -> str:
    return member[:1].lower() + member[1:]


def _join(path: str, member: str) -> str:
    return f"{path}.{_lower_first(member)}" if path else _lower_first(member)


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


class _Walker:
    """Walks one value against one shape, collecting AWS-style problem strings."""

    def __init__(self, *, output: bool, allow_extra: bool = False) -> None:
        self.output = output
        self.allow_extra = allow_extra
        self.problems: list[str] = []

    def fail(self, path: str, constraint: str, value: Any = None, show: bool = True) -> None:
        where = path or "body"
        shown = f" '{_show(value)}'" if show and value is not None else ""
        self.problems.append(
            f"Value{shown} at '{where}' failed to satisfy constraint: {constraint}"
        )

    def walk(self, name: str, value: Any, path: str) -> Any:
        spec = shape(name)
        kind = spec["type"]
        handler: Callable[[dict[str, Any], Any, str], Any] = getattr(self, f"_{kind}")
        if name == "Image" and not self.output:
            _check_image(value, path)
        return handler(spec, value, path)

    def _structure(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a structure (JSON object)", show=False)
            return None
        members: dict[str, Any] = spec.get("members", {})
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in members:
                if not self.allow_extra:
                    self.problems.append(
                        f"Unknown member '{key}' at '{path or 'body'}'; "
                        f"valid members: {', '.join(members) or 'none'}"
                    )
                continue
            if item is None:
                continue
            out[key] = self.walk(members[key]["shape"], item, _join(path, key))
        for required in spec.get("required", []):
            if value.get(required) is None:
                self.fail(_join(path, required), "Member must not be null", show=False)
        return out

    def _list(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.fail(path, "Member must be a list (JSON array)", show=False)
            return None
        self._length(spec, len(value), path, value)
        member = spec["member"]["shape"]
        return [self.walk(member, item, f"{path}.{i}.member") for i, item in enumerate(value, 1)]

    def _map(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, "Member must be a map (JSON object)", show=False)
            return None
        self._length(spec, len(value), path, None)
        out = {}
        for key, item in value.items():
            self.walk(spec["key"]["shape"], key, f"{path}.{key}.key")
            out[key] = self.walk(spec["value"]["shape"], item, f"{path}.{key}.value")
        return out

    def _string(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, "Member must be a string", value)
            return value
        self._length(spec, len(value), path, value)
        if "enum" in spec and value not in spec["enum"]:
            self.fail(
                path, f"Member must satisfy enum value set: [{', '.join(spec['enum'])}]", value
            )
        pattern = spec.get("pattern")
        if pattern is not None and not compile_pattern(pattern)(value):
            self.fail(path, f"Member must satisfy regular expression pattern: {pattern}", value)
        return value

    def _integer(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "Member must be an integer", value)
            return value
        low, high = _INT_BOUNDS[spec["type"]]
        if not low <= value <= high:
            self.fail(path, f"Member must fit a {spec['type']}", value)
        self._range(spec, value, path)
        return value

    _long = _integer

    def _float(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "Member must be a number", value)
            return value
        if not math.isfinite(value):
            self.fail(path, "Member must be a finite number", value)
            return value
        self._range(spec, value, path)
        return float(value)

    _double = _float

    def _boolean(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            self.fail(path, "Member must be a boolean", value)
        return value

    def _timestamp(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if self.output and isinstance(value, datetime):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "Member must be a timestamp in epoch seconds", value)
        elif self.output and value > _MAX_EPOCH_SECONDS:
            self.fail(path, "Member must be epoch seconds, not milliseconds", value)
        return value

    def _blob(self, spec: dict[str, Any], value: Any, path: str) -> Any:
        if self.output:
            if not isinstance(value, bytes | str):
                self.fail(path, "Member must be bytes", show=False)
            return value
        if not isinstance(value, str):
            self.fail(path, "Member must be a base64-encoded string", show=False)
            return None
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(path, "Member must be valid base64", show=False)
            return None
        self._length(spec, len(data), path, None)
        return data

    def _length(self, spec: dict[str, Any], size: int, path: str, value: Any) -> None:
        shown = value if isinstance(value, str) else None
        if "min" in spec and size < spec["min"]:
            self.fail(
                path, f"Member must have length greater than or equal to {spec['min']}", shown
            )
        if "max" in spec and size > spec["max"]:
            self.fail(path, f"Member must have length less than or equal to {spec['max']}", shown)

    def _range(self, spec: dict[str, Any], value: float, path: str) -> None:
        if "min" in spec and value < spec["min"]:
            self.fail(path, f"Member must have value greater than or equal to {spec['min']}", value)
        if "max" in spec and value > spec["max"]:
            self.fail(path, f"Member must have value less than or equal to {spec['max']}", value)


def _check_image(value: Any, path: str) -> None:
    """Wire-shape rules for an ``Image`` (raised at once: each is its own error code)."""
    if not isinstance(value, dict):
        return  # the structure check reports it
    has_bytes = value.get("Bytes") is not None
    has_s3 = value.get("S3Object") is not None
    if has_bytes == has_s3:
        raise InvalidParameterError(
            f"Exactly one of {path or 'image'}.bytes or {path or 'image'}.s3Object must be given."
        )
    raw = value.get("Bytes")
    if not isinstance(raw, str):
        return
    limit = int(shape("ImageBlob")["max"])
    # base64 is 4 characters per 3 bytes; this bound avoids decoding twice.
    if len(raw) * 3 // 4 - raw.count("=", max(0, len(raw) - 2)) > limit:
        raise ImageTooLargeError(
            f"Image bytes exceed the {limit // (1024 * 1024)} MB limit; "
            "send a smaller image (or reference it with S3Object)."
        )
    if not raw:
        raise InvalidImageError("Image bytes are empty; send a JPEG or PNG image.")


__all__ = [
    "SUPPORTED_OPERATIONS",
    "check_response",
    "operation_shape",
    "service_model",
    "supported_operations",
    "validate_request",
]
