"""Who is calling and why: principals, roles and the per-request context."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import AccessDeniedError

ROLES = ("admin", "enroller", "searcher", "reviewer", "auditor")

# Which role may run which operation. admin may run everything.
OPERATION_ROLES: dict[str, frozenset[str]] = {}


def _allow(roles: tuple[str, ...], *ops: str) -> None:
    for op in ops:
        OPERATION_ROLES[op] = frozenset(("admin", *roles))


_allow(("enroller", "searcher", "reviewer", "auditor"), "DescribeCollection", "ListCollections")
_allow((), "CreateCollection", "DeleteCollection", "TagResource", "UntagResource")
_allow(("enroller", "searcher", "auditor"), "ListTagsForResource")
_allow(("enroller",), "IndexFaces", "DeleteFaces", "CreateUser", "DeleteUser",
       "AssociateFaces", "DisassociateFaces")
_allow(("enroller", "searcher", "reviewer", "auditor"), "ListFaces", "ListUsers")
_allow((), "Halt", "Resume", "CreateCheckpoint", "CreateConsent", "WithdrawConsent", "RetentionSweep")
_allow(("auditor",), "ListConsents", "RetentionSchedule")
_allow(("reviewer",), "ReviewCandidate")
_allow(("reviewer", "auditor"), "GetReview")
_allow(("enroller", "searcher", "reviewer", "auditor"), "GetStatus")
# Console pages that are not API operations: reading the ledger, and the report.
_allow(("auditor",), "ReadLedger")
_allow(("auditor", "reviewer"), "ReadReport")
_allow(("searcher",), "DetectFaces", "CompareFaces", "SearchFaces", "SearchFacesByImage",
       "SearchUsers", "SearchUsersByImage", "StartFaceDetection", "GetFaceDetection",
       "StartFaceSearch", "GetFaceSearch")


@dataclass(frozen=True)
class Principal:
    access_key_id: str
    secret: str = field(repr=False)
    role: str
    revoked: bool = False
    label: str | None = None
    defaults: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    purpose: str | None = None
    case: str | None = None
    consent: str | None = None
    remote: str | None = None
    signature: str | None = None  # the request's SigV4 signature: an exact replay repeats it

    @classmethod
    def from_transport(cls, context: dict) -> RequestContext:
        """Purpose, case and consent come only from headers the client signed."""
        headers = dict(context.get("faceledger_headers") or {})
        signed = context.get("signed_headers")
        if signed is not None:
            headers = {k: v for k, v in headers.items() if k in set(signed)}

        def pick(name: str) -> str | None:
            if f"x-faceledger-{name}" in headers:
                return headers[f"x-faceledger-{name}"]
            return None if "faceledger_headers" in context else context.get(name)

        return cls(
            request_id=str(context.get("request_id", "")),
            purpose=pick("purpose"),
            case=pick("case"),
            consent=pick("consent"),
            remote=context.get("remote"),
            signature=context.get("signature") or None,
        )


def may(principal: Principal, operation: str) -> bool:
    """Whether ``principal``'s role may run ``operation`` (what a transport offers; ``authorize`` enforces)."""
    return principal.role in OPERATION_ROLES.get(operation, frozenset({"admin"}))


def authorize(principal: Principal, operation: str) -> None:
    allowed = OPERATION_ROLES.get(operation, frozenset({"admin"}))
    if principal.role not in allowed:
        need = " or ".join(sorted(allowed))
        raise AccessDeniedError(
            f"Key {principal.access_key_id} has role '{principal.role}'; {operation} needs {need}."
        )
