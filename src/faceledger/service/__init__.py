"""The service layer: Rekognition's face operations over engine, catalog, index and ledger."""

from .context import Principal, RequestContext
from .core import Service

__all__ = ["Principal", "RequestContext", "Service"]
