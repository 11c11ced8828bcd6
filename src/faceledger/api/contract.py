"""The seam between the Rekognition transport and the service layer.

These are structural types only: the service layer owns the concrete classes
and all business rules. The transport authenticates with :meth:`Service.lookup_key`
and hands every validated call to :meth:`Service.dispatch`; it never looks
inside a principal beyond what signature checking needs.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict


class Principal(Protocol):
    """An API key as the transport sees it."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def revoked(self) -> bool: ...


class Service(Protocol):
    """The one entry point of the service layer (blocking; run off the event loop).

    A service may also offer ``own_operations`` (a frozenset of names), which the
    transport routes from ``X-Amz-Target: FaceledgerService.<Op>``, and
    ``engine_state() -> dict`` (``status``: ok | degraded | failing, workers
    ``alive`` of ``workers``, ``restarts``, ..., ``ready``: one worker can take
    work, ``live``: not every worker has failed), which ``GET /health`` and
    ``GET /ready`` report as they are, and ``store_state() -> dict`` (``kind``,
    ``reachable``, ``error``), which ``GET /ready`` reports (503 when not reachable).
    """

    def lookup_key(self, access_key_id: str) -> Principal | None: ...

    def dispatch(
        self,
        operation: str,
        params: dict[str, Any],
        principal: Principal,
        context: dict[str, Any],
    ) -> dict[str, Any]: ...


class RequestContext(TypedDict):
    """Request metadata passed to ``dispatch`` as ``context`` (a plain dict at run time).

    request_id        the uuid4 also sent back as ``x-amzn-RequestId``
    remote            the peer's IP address, or None when unknown
    invocation_id     the ``amz-sdk-invocation-id`` header (repeated on SDK retries), or None
    region            the region from the SigV4 credential scope (e.g. "us-east-1")
    user_agent        the ``User-Agent`` header, or None
    purpose           the ``x-faceledger-purpose`` header, or None
    case              the ``x-faceledger-case`` header, or None
    faceledger_headers  every ``x-faceledger-*`` header, lower-cased name -> value
    signed_headers    lower-cased names the client signed (a purpose header not listed
                      here could have been altered in transit)
    signature         the request's hex SigV4 signature; a replay of the exact signed
                      request (within the clock-skew window) carries the same one
    """

    request_id: str
    remote: str | None
    invocation_id: str | None
    region: str
    user_agent: str | None
    purpose: str | None
    case: str | None
    faceledger_headers: dict[str, str]
    signed_headers: list[str]
    signature: str
