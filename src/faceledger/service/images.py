"""Where request images come from: inline bytes or an S3Object in a mapped bucket.

In the embedded default an S3 bucket is a local directory (settings.buckets or
``<data_dir>/buckets/<name>``). Only JPEG and PNG are accepted on the
Rekognition surface; decoding itself happens in the engine workers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidParameterError,
    InvalidS3ObjectError,
)

MAX_INLINE_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024


def image_bytes(image: dict | None, buckets: dict[str, Path], member: str = "Image") -> bytes:
    """The raw bytes of a Rekognition ``Image`` member, checked for size and presence."""
    if not isinstance(image, dict):
        raise InvalidParameterError(f"{member} is required.")
    has_bytes, has_s3 = "Bytes" in image and image["Bytes"] is not None, "S3Object" in image
    if has_bytes == has_s3:
        raise InvalidParameterError(f"{member} must have exactly one of Bytes or S3Object.")
    if has_bytes:
        data = image["Bytes"]
        if isinstance(data, str):
            raise InvalidParameterError(f"{member}.Bytes must be base64-encoded bytes.")
        if len(data) > MAX_INLINE_BYTES:
            raise ImageTooLargeError(
                f"{member}.Bytes is {len(data):,} bytes; the limit is 5 MB (15 MB through S3Object)."
            )
        if not data:
            raise InvalidImageError(f"{member}.Bytes is empty.")
        return bytes(data)
    return s3_object_bytes(image["S3Object"], buckets, MAX_S3_BYTES, member=f"{member}.S3Object")


def s3_object_bytes(obj: dict, buckets: dict[str, Path], limit: int, member: str = "S3Object") -> bytes:
    bucket, name = obj.get("Bucket"), obj.get("Name")
    if not bucket or not name:
        raise InvalidParameterError(f"{member} needs Bucket and Name.")
    if not isinstance(bucket, str) or not isinstance(name, str) or "\x00" in bucket or "\x00" in name:
        raise InvalidParameterError(f"{member}.Bucket and .Name must be strings without NUL characters.")
    path = bucket_object_path(bucket, name, buckets)
    size = path.stat().st_size
    if size > limit:
        raise ImageTooLargeError(f"s3://{bucket}/{name} is {size:,} bytes; the limit is {limit:,}.")
    try:
        return path.read_bytes()
    except OSError as exc:  # unreadable (permissions) or gone since the check: the object's fault, not a 500
        raise InvalidS3ObjectError(f"s3://{bucket}/{name} cannot be read: {exc.strerror}.") from exc


def bucket_object_path(bucket: str, name: str, buckets: dict[str, Path]) -> Path:
    """The existing local file behind ``s3://bucket/name``, or InvalidS3ObjectError.

    Any name the file system cannot take (NUL, a lone surrogate, too long, a
    path escaping the bucket folder) is an object that does not exist, never
    an internal error.
    """
    root = buckets.get(bucket)
    if root is None:
        shown = bucket if bucket.isprintable() and len(bucket) <= 255 else "<bucket>"
        raise InvalidS3ObjectError(
            f"Bucket {_short(bucket)} is not mapped; map it with FACELEDGER_BUCKETS={shown}=/path."
        )
    missing = InvalidS3ObjectError(f"s3://{_short(bucket, 60)}/{_short(name)} does not exist.")
    try:
        path = (root / name).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            raise missing
    except (ValueError, OSError):  # NUL (ValueError), unencodable (UnicodeEncodeError), too long
        raise missing from None
    return path


def _short(text: str, limit: int = 200) -> str:
    """``text`` for an error message: repr'd (control characters escaped) and cut to ``limit``."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
