"""The one exception hierarchy of faceledger.

Every error a user can cause or meet is a subclass of :class:`FaceledgerError`
and carries three things: the Rekognition error code it becomes on the wire,
the HTTP status, and the CLI exit code. Transports map errors by reading these
attributes; they never inspect messages. Messages say what to do next.

CLI exit codes (documented in docs/cli.md):
  0 success, 1 unexpected internal error, 2 usage error (click),
  3 invalid parameter, 4 unreadable or unsupported image, 5 image too large,
  6 not found, 7 already exists, 8 access denied / halted, 9 service busy,
  10 model file problem, 11 service unreachable, 12 conflict,
  13 integrity failure (a broken ledger or a damaged catalog), 14 storage full,
  15 model pack invalid (a manifest field, file or hash is wrong), 16 model pack not calibrated.
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


class AnalysisBudgetError(ImageTooLargeError):
    """Analysing one image needed more CPU time than the engine's per-image budget.

    Rekognition's ImageTooLargeException ("the image size or resolution exceeds
    the allowed limit"): not retryable as is, since the same image costs the
    same again; a smaller or simpler image is the fix.
    """


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


class EngineUnavailableError(ThrottlingError):
    """No engine worker can take work (all are restarting, or cannot be restarted)."""


class EngineWorkerLostError(FaceledgerError):
    """The engine worker running this request died or hung and was replaced: retry.

    ``InternalServerError`` (HTTP 500) is in Rekognition's model and every AWS SDK
    retries it, so a client with default retries usually never sees this.
    """

    code = "InternalServerError"
    http_status = 500
    exit_code = 9


class EngineBudgetError(ImageTooLargeError):
    """Analysing one image (or video frame) ran past FACELEDGER_ENGINE_TIMEOUT_S of busy work.

    Not retryable: the same image would run away again. Rekognition's closest
    code is ``ImageTooLargeException`` (the image is too costly to analyse).
    """


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


class PackUnavailableError(InvalidParameterError):
    """A collection's model pack cannot be used here, or two packs' vectors would be compared."""


class ModelFileError(FaceledgerError):
    """A model file is missing or does not match its pinned SHA-256."""

    code = "InternalServerError"
    http_status = 500
    exit_code = 10


class ModelPackError(FaceledgerError):
    """A model pack's manifest or files are wrong; the message names the field (docs/model-packs.md)."""

    code = "InvalidParameterException"
    http_status = 400
    exit_code = 15

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ModelNotCalibratedError(FaceledgerError):
    """The pack has no calibration table measured for it: it may detect faces but never match them."""

    code = "ModelNotCalibratedException"
    http_status = 400
    exit_code = 16


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


class StoreUnavailableError(ServiceUnavailableError):
    """The PostgreSQL store is down, restarting or unreachable; nothing was written.

    503 (not 500): the condition is transient and the request is safe to retry once the store answers,
    which is what the AWS SDKs do with a 503 (standard and legacy retry modes alike).
    """

    code = "ServiceUnavailableException"
    http_status = 503
    exit_code = 11


class IntegrityFailedError(FaceledgerError):
    """The ledger does not verify or the catalog database is damaged: evidence, not a bug."""

    code = "InternalServerError"
    http_status = 500
    exit_code = 13


class StorageFullError(FaceledgerError):
    """The disk holding the data directory is full (SQLite's SQLITE_FULL); nothing was written.

    503, so boto3 and the AWS CLI retry it like any transient server error.
    """

    code = "StorageFullException"
    http_status = 503
    exit_code = 14


class RequestTimeoutError(FaceledgerError):
    """The request body did not arrive within the server's body timeout (a slow or stalled client)."""

    code = "RequestTimeoutException"
    http_status = 408
    exit_code = 11


ALL_ERRORS: tuple[type[FaceledgerError], ...] = (
    FaceledgerError,
    PackUnavailableError,  # before its base, as below
    ModelPackError,  # before InvalidParameterError: that code maps back to InvalidParameterError
    InvalidParameterError,
    InvalidImageError,
    AnalysisBudgetError,  # before its base: a code maps back to the last class listed with it
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
    ModelNotCalibratedError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
    InvalidSignatureError,
    StoreUnavailableError,  # before its base: the code maps back to ServiceUnavailableError
    ServiceUnavailableError,
    IntegrityFailedError,
    StorageFullError,
    RequestTimeoutError,
)
