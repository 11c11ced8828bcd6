"""Replayed signed writes: the same signed request twice must not enrol twice.

SigV4 lets a captured request be sent again for as long as its X-Amz-Date is
within the clock-skew window (``clock_skew_s`` either side of now), and an SDK
retry after a lost response is exactly such a repeat. IndexFaces has no
ClientRequestToken in Rekognition's model, so the signature stands in for
one: the first answer is stored in the idempotency table (in the same
transaction as the enrolment, so a restart does not reopen the window) under
``sig:<signature>``, and a replay gets that answer back without enrolling or
recording anything again. Entries are purged by the retention sweep once no
request carrying them could still pass the skew check.

Operations that do have ClientRequestToken (CreateUser, DeleteUser,
AssociateFaces, DisassociateFaces, StartFaceDetection, StartFaceSearch) use
it (users.idempotent), and the signature in its place when the client sent
none.
"""

from __future__ import annotations

from ..store.db import Transaction
from .core import Call, Service

PREFIX = "sig:"
# Beyond the two skew windows a request can be accepted in, a minute of slack.
SLACK_S = 60.0


def token(call: Call) -> str | None:
    """``sig:<signature>`` for a signed request (the key its answer is stored under), else None."""
    signature = getattr(call.ctx, "signature", None)
    return f"{PREFIX}{signature}" if signature else None


def replayed(svc: Service, call: Call) -> dict | None:
    """The stored answer when ``call`` is a replay of an accepted signed request, else None."""
    token_ = token(call)
    if token_ is None:
        return None
    seen = svc.catalog.idempotent_get(call.operation, token_)
    return None if seen is None else dict(seen[1])


def claim(svc: Service, tx: Transaction, call: Call) -> dict | None:
    """In the write's transaction: hold ``call``'s signature, then its stored answer if it has one.

    A replay racing the original on another process (one PostgreSQL) waits here until the
    original commits and then gets its answer: one enrolment, not two.
    """
    token_ = token(call)
    if token_ is None:
        return None
    svc.catalog.claim_token(tx, call.operation, token_)
    return replayed(svc, call)


def remember(svc: Service, tx: Transaction, call: Call, response: dict) -> None:
    """Store ``response`` for replays of ``call`` (inside the write's own transaction)."""
    token_ = token(call)
    if token_ is not None:
        svc.catalog.idempotent_put(tx, call.operation, token_, "signed", response)


def purge(svc: Service, tx: Transaction, now: float) -> int:
    """Forget signatures no request could still carry past the skew check."""
    horizon = now - 2 * float(svc.settings.clock_skew_s) - SLACK_S
    return svc.catalog.purge_idempotency(tx, horizon, PREFIX)
