"""Storage layer: the SQLite catalog, the hash-chained ledger, the vector index.

The service opens these once at start-up and hands them down; nothing here is
a module-level singleton, and nothing here knows HTTP, policy or models.
"""

from faceledger.store.catalog import Catalog
from faceledger.store.db import Transaction
from faceledger.store.ledger import Ledger, VerifyResult
from faceledger.store.vectors import VectorIndex

__all__ = ["Catalog", "Ledger", "Transaction", "VectorIndex", "VerifyResult"]
