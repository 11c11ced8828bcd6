"""Wire errors that only the Rekognition transport can raise.

Everything here subclasses the one hierarchy in :mod:`faceledger.errors`, so
the transport maps them like any other error (by ``code`` and
``http_status``). They exist because AWS answers some protocol-level mistakes
with codes that no other layer has a reason to know. Business errors do not
belong here.
"""

from __future__ import annotations

from faceledger.errors import FaceledgerError, InvalidSignatureError


class UnknownOperationError(FaceledgerError):
    """``X-Amz-Target`` is missing, malformed or names an operation we do not serve."""

    code = "UnknownOperationException"
    http_status = 400
    exit_code = 3


class IncompleteSignatureError(InvalidSignatureError):
    """The Authorization header is present but malformed (AWS's own code)."""

    code = "IncompleteSignatureException"
    http_status = 403


__all__ = ["IncompleteSignatureError", "UnknownOperationError"]
