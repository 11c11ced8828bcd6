"""The service layer: Rekognition's face operations over engine, catalog, index and ledger.

``open_service(settings)`` opens a data directory and returns a ready Service;
``create(...)`` assembles one over parts the caller opened (tests, tools).
"""

from .assembly import create, open_service
from .context import Principal, RequestContext
from .core import Service

__all__ = ["Principal", "RequestContext", "Service", "create", "open_service"]
