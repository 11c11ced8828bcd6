"""The one exception hierarchy of faceledger.

Every error a user can cause or meet is a subclass of :class:`FaceledgerError`
and carries three things: the Rekognition error code it becomes on the wire,
the HTTP status, and the CLI exit code. Transports map errors by reading these
attributes; they never inspect messages. Messages say what to do next.

CLI exit codes (documented in docs/cli.md):
  0 success, 1 unexpected internal error, 2 usage error (click),
  3 invalid parameter, 4 unreadable or unsupported image, 5 image too large,
  6 not found, 7 already exists, 8 access denied / halted, 9 service busy,
  10 model file problem, 11 service unreachable, 12 conflict.
"""

from __future__ import annotations


class FaceledgerError(Exception):
    """Base of every error faceledger raises on purpose."""

    code = "InternalServerError"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InvalidParameterError(FaceledgerError):
    code = "InvalidParameterException"
    http_status = 400
    exit_code = 3


class InvalidImageError(FaceledgerError):
    """The bytes are not an image we can decode (empty, truncated, unknown)."""

    code = "InvalidImageFormatException"
    http_status = 400
    exit_code = 4


class ImageTooLargeError(FaceledgerError):
    """Too many bytes, or too many pixels (decompression-bomb guard)."""

    code = "ImageTooLargeException"
    http_status = 400
    exit_code = 5


class ResourceNotFoundError(FaceledgerError):
    code = "ResourceNotFoundException"
    http_status = 400
    exit_code = 6


class ResourceAlreadyExistsError(FaceledgerError):
    code = "ResourceAlreadyExistsException"
    http_status = 400
    exit_code = 7


class AccessDeniedError(FaceledgerError):
    code = "AccessDeniedException"
    http_status = 400
    exit_code = 8


class HaltedError(AccessDeniedError):
    """Matching is halted by an operator (the stop button)."""


class ThrottlingError(FaceledgerError):
    code = "ThrottlingException"
    http_status = 500
    exit_code = 9


class ConflictError(FaceledgerError):
    code = "ConflictException"
    http_status = 400
    exit_code = 12


class IdempotentParameterMismatchError(FaceledgerError):
    code = "IdempotentParameterMismatchException"
    http_status = 400
    exit_code = 12


class InvalidPaginationTokenError(FaceledgerError):
    code = "InvalidPaginationTokenException"
    http_status = 400
    exit_code = 3


class ServiceQuotaExceededError(FaceledgerError):
    code = "ServiceQuotaExceededException"
    http_status = 400
    exit_code = 3


class LimitExceededError(FaceledgerError):
    code = "LimitExceededException"
    http_status = 400
    exit_code = 9


class InvalidS3ObjectError(FaceledgerError):
    code = "InvalidS3ObjectException"
    http_status = 400
    exit_code = 4


class VideoTooLargeError(FaceledgerError):
    code = "VideoTooLargeException"
    http_status = 400
    exit_code = 5


class ModelFileError(FaceledgerError):
    """A model file is missing or does not match its pinned SHA-256."""

    code = "InternalServerError"
    http_status = 500
    exit_code = 10


class AuthError(FaceledgerError):
    """Authentication failures use AWS's unmodelled codes."""

    http_status = 400
    exit_code = 8


class MissingAuthenticationTokenError(AuthError):
    code = "MissingAuthenticationTokenException"
    http_status = 403


class UnrecognizedClientError(AuthError):
    code = "UnrecognizedClientException"


class InvalidSignatureError(AuthError):
    code = "InvalidSignatureException"
    http_status = 403


class ServiceUnavailableError(FaceledgerError):
    """The CLI could not reach a running service."""

    code = "ServiceUnavailableException"
    http_status = 503
    exit_code = 11


class RequestTimeoutError(FaceledgerError):
    """The request body did not arrive within the server's body timeout (a slow or stalled client)."""

    code = "RequestTimeoutException"
    http_status = 408
    exit_code = 11


ALL_ERRORS: tuple[type[FaceledgerError], ...] = (
    FaceledgerError,
    InvalidParameterError,
    InvalidImageError,
    ImageTooLargeError,
    ResourceNotFoundError,
    ResourceAlreadyExistsError,
    AccessDeniedError,
    HaltedError,
    ThrottlingError,
    ConflictError,
    IdempotentParameterMismatchError,
    InvalidPaginationTokenError,
    ServiceQuotaExceededError,
    LimitExceededError,
    InvalidS3ObjectError,
    VideoTooLargeError,
    ModelFileError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
    InvalidSignatureError,
    ServiceUnavailableError,
    RequestTimeoutError,
)
