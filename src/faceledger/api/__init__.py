"""Amazon Rekognition's JSON 1.1 wire protocol for faceledger (SigV4, validation, errors).

Public surface: :func:`create_app` builds the ASGI app around a service
object, :func:`run` serves it with uvicorn. This package holds no business
rules; the service layer does.
"""

from faceledger.api.app import create_app
from faceledger.api.contract import Principal, RequestContext, Service
from faceledger.api.model import SUPPORTED_OPERATIONS, check_response, validate_request
from faceledger.api.server import run

__all__ = [
    "SUPPORTED_OPERATIONS",
    "Principal",
    "RequestContext",
    "Service",
    "check_response",
    "create_app",
    "run",
    "validate_request",
]
