"""Verify AWS Signature Version 4 on incoming requests, exactly as botocore signs them.

The canonical request is rebuilt from what arrived on the wire: the method,
the path as sent (dot segments and repeated slashes removed, then
percent-encoded once more, like ``botocore.auth.SigV4Auth``), the raw query
pairs sorted, the headers the client listed in ``SignedHeaders`` (values
whitespace-trimmed, repeats comma-joined) and the SHA-256 of the body. The
payload hash always comes from the body itself; a client-declared
``x-amz-content-sha256`` must agree with it (so ``UNSIGNED-PAYLOAD`` is refused).

This module decides only *who* signed a request. It must not decide what that
principal may do (the service layer's policy does), and it must never log or
echo a secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from faceledger.api.contract import Principal
from faceledger.api.errors import IncompleteSignatureError
from faceledger.errors import (
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SERVICE_NAME = "rekognition"
DEFAULT_CLOCK_SKEW_S = 900

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


@dataclass(frozen=True)
class WireRequest:
    """The parts of an HTTP request that a signature covers, as received.

    ``headers`` holds every header occurrence with a lower-cased name, in
    arrival order; ``raw_path`` and ``query_string`` are still percent-encoded.
    """

    method: str
    raw_path: str
    query_string: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature checked out."""

    principal: Principal
    access_key_id: str
    region: str
    signed_headers: tuple[str, ...]
    timestamp: datetime = field(compare=False)
    signature: str = field(default="", compare=False)  # hex; identifies a replay of this exact request


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class Prechecked:
    """A request whose Authorization header, key and date check out; the signature is still unchecked."""

    principal: Principal
    auth: _Authorization
    amz_date: str
    timestamp: datetime


def verify(
    request: WireRequest,
    lookup_key: Callable[[str], Principal | None],
    *,
    service: str = SERVICE_NAME,
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    now: datetime | None = None,
) -> VerifiedRequest:
    """Check ``request``'s SigV4 signature; return who signed it or raise an AuthError."""
    pre = precheck(request, lookup_key, service=service, clock_skew_s=clock_skew_s, now=now)
    return verify_signature(request, pre)


def precheck(
    request: WireRequest,
    lookup_key: Callable[[str], Principal | None],
    *,
    service: str = SERVICE_NAME,
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
    now: datetime | None = None,
) -> Prechecked:
    """Everything :func:`verify` checks that needs no body: run before the body is read.

    A request without a well-formed Authorization header naming a live key,
    signed within the clock-skew window, is refused here, so it never holds
    a body buffer or an engine slot. ``request.body`` is not looked at.
    """
    header = request.header("authorization")
    if not header:
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    auth = _parse_authorization(header)
    if auth.service != service:
        raise InvalidSignatureError(
            f"Credential should be scoped to correct service: '{service}'. "
        )
    if auth.terminator != "aws4_request":
        raise InvalidSignatureError(
            "Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{auth.terminator}'."
        )
    principal = lookup_key(auth.access_key_id)
    if principal is None or principal.revoked:
        raise UnrecognizedClientError("The security token included in the request is invalid.")

    amz_date, timestamp = _request_time(request, auth)
    _check_skew(amz_date, timestamp, clock_skew_s, now or datetime.now(UTC))
    for required in ("host", "x-amz-target"):
        if required not in auth.signed_headers and (
            required == "host" or request.header(required) is not None
        ):
            raise InvalidSignatureError(
                f"'{required}' must be a 'SignedHeader' in the AWS Authorization."
            )
    return Prechecked(principal, auth, amz_date, timestamp)


def verify_signature(request: WireRequest, pre: Prechecked) -> VerifiedRequest:
    """The body-dependent half of :func:`verify`: payload hash and signature."""
    auth, principal = pre.auth, pre.principal
    body_hash = hashlib.sha256(request.body).hexdigest()
    declared = request.header("x-amz-content-sha256")
    if declared is not None and declared != body_hash:
        raise InvalidSignatureError(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    canonical = canonical_request(request, auth.signed_headers, body_hash)
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, pre.amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    expected = signature(principal.secret, auth.date, auth.region, auth.service, string_to_sign)
    if not hmac.compare_digest(expected.encode("ascii"), auth.signature.encode("ascii", "replace")):
        raise InvalidSignatureError(SIGNATURE_MISMATCH)
    return VerifiedRequest(
        principal=principal,
        access_key_id=auth.access_key_id,
        region=auth.region,
        signed_headers=auth.signed_headers,
        timestamp=pre.timestamp,
        signature=auth.signature,
    )


def canonical_request(request: WireRequest, signed_headers: Sequence[str], body_hash: str) -> str:
    """The SigV4 canonical request, built the way botocore builds it."""
    lines = [
        request.method.upper(),
        canonical_path(request.raw_path),
        canonical_query(request.query_string),
    ]
    header_lines = []
    for name in signed_headers:
        values = [" ".join(v.split()) for k, v in request.headers if k == name]
        header_lines.append(f"{name}:{','.join(values)}")
    lines.append("\n".join(header_lines) + "\n")
    lines.append(";".join(signed_headers))
    lines.append(body_hash)
    return "\n".join(lines)


def canonical_path(raw_path: str) -> str:
    """Remove dot segments and empty segments, then percent-encode (as botocore does)."""
    if not raw_path:
        return "/"
    segments: list[str] = []
    for part in raw_path.split("/"):
        if part == "..":
            if segments:
                segments.pop()
        elif part and part != ".":
            segments.append(part)
    first = "/" if raw_path.startswith("/") else ""
    last = "/" if raw_path.endswith("/") and segments else ""
    return quote(first + "/".join(segments) + last, safe="/~")


def canonical_query(query_string: str) -> str:
    """Sort the raw ``key=value`` pairs (botocore signs the query as sent)."""
    if not query_string:
        return ""
    pairs = []
    for pair in query_string.split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signature(secret: str, date: str, region: str, service: str, string_to_sign: str) -> str:
    """HMAC chain kDate → kRegion → kService → kSigning, hex signature of ``string_to_sign``."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _parse_authorization(header: str) -> _Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Unsupported AWS 'algorithm': '{algorithm}'. Only {ALGORITHM} is accepted."
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    missing = [f for f in ("Credential", "Signature", "SignedHeaders") if not fields.get(f)]
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{f}' parameter." for f in missing)
            + f" Authorization={ALGORITHM} ..."
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise IncompleteSignatureError(
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            "keyid/date/region/service/term, got '" + "/".join(scope[1:]) + "'"
        )
    names = tuple(n.strip().lower() for n in fields["SignedHeaders"].split(";") if n.strip())
    return _Authorization(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        terminator=scope[4],
        signed_headers=names,
        signature=fields["Signature"],
    )


def _request_time(request: WireRequest, auth: _Authorization) -> tuple[str, datetime]:
    """The X-Amz-Date (or Date) the client signed, as text and as an aware datetime."""
    amz_date = request.header("x-amz-date")
    date_header = "x-amz-date"
    try:
        if amz_date is not None:
            timestamp = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        else:
            http_date = request.header("date")
            if http_date is None:
                raise IncompleteSignatureError(
                    "Authorization header requires existence of either a 'X-Amz-Date' "
                    "or a 'Date' header."
                )
            date_header = "date"
            timestamp = parsedate_to_datetime(http_date).astimezone(UTC)
            amz_date = timestamp.strftime(AMZ_DATE_FORMAT)
    except (ValueError, TypeError) as exc:
        raise IncompleteSignatureError(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from exc
    if date_header not in auth.signed_headers:
        raise InvalidSignatureError(
            f"'{date_header}' must be a 'SignedHeader' in the AWS Authorization."
        )
    if auth.date != amz_date[:8]:
        raise InvalidSignatureError(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    return amz_date, timestamp


def _check_skew(amz_date: str, timestamp: datetime, skew_s: float, now: datetime) -> None:
    skew = timedelta(seconds=skew_s)
    minutes = f"{skew_s / 60:g} min."
    stamp_now = now.strftime(AMZ_DATE_FORMAT)
    if timestamp < now - skew:
        raise InvalidSignatureError(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - skew).strftime(AMZ_DATE_FORMAT)} ({stamp_now} - {minutes})"
        )
    if timestamp > now + skew:
        raise InvalidSignatureError(
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + skew).strftime(AMZ_DATE_FORMAT)} ({stamp_now} + {minutes})"
        )
