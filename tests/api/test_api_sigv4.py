"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from api_fakes import ACCESS_KEY, REVOKED_KEY, SECRET, FakeService
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceledger.api.errors import IncompleteSignatureError
from faceledger.api.sigv4 import (
    AMZ_DATE_FORMAT,
    WireRequest,
    canonical_path,
    canonical_request,
    verify,
)
from faceledger.errors import (
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

URL = "http://127.0.0.1:8085/"
BODY = b'{"CollectionId":"people"}'
LOOKUP = FakeService().lookup_key


def sign(
    url: str = URL,
    body: bytes = BODY,
    *,
    key: str = ACCESS_KEY,
    secret: str = SECRET,
    token: str | None = None,
    service: str = "rekognition",
    region: str = "us-east-1",
    headers: dict[str, str] | None = None,
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers=headers
        or {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.CreateCollection",
        },
    )
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return request


def wire(request: AWSRequest, **changes: Any) -> WireRequest:
    """What the server would receive for ``request`` (urllib3 adds Host from the URL)."""
    parts = urlsplit(request.url)
    headers = [(k.lower(), v) for k, v in request.headers.items()]
    if not any(k == "host" for k, _ in headers):
        headers.append(("host", parts.netloc))
    fields: dict[str, Any] = {
        "method": request.method,
        "raw_path": parts.path,
        "query_string": parts.query,
        "headers": headers,
        "body": request.body,
    }
    fields.update(changes)
    return WireRequest(**fields)


def signed_at(request: AWSRequest) -> datetime:
    return datetime.strptime(request.headers["X-Amz-Date"], AMZ_DATE_FORMAT).replace(tzinfo=UTC)


def check(request: AWSRequest, **changes: Any) -> Any:
    return verify(wire(request, **changes), LOOKUP, now=signed_at(request))


def test_botocore_signature_verifies() -> None:
    verified = check(sign(region="eu-west-1"))
    assert verified.principal.access_key_id == ACCESS_KEY
    assert verified.region == "eu-west-1"
    assert verified.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-target")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8085/",
        "http://localhost/",
        "http://127.0.0.1:8085/prefix/./a/../b//c/",
        "http://127.0.0.1:8085/with%20space/~user/x",
        "http://127.0.0.1:8085/?b=2&a=1&a=0&flag",
        "http://127.0.0.1:8085/p?x=%2F&X=y",
    ],
)
def test_canonical_request_matches_botocore(url: str) -> None:
    request = sign(url)
    unsigned = AWSRequest(method="POST", url=url, data=BODY, headers=dict(request.headers.items()))
    del unsigned.headers["Authorization"]
    boto = SigV4Auth(Credentials(ACCESS_KEY, SECRET), "rekognition", "us-east-1")
    expected = boto.canonical_request(unsigned)
    names = boto.signed_headers(boto.headers_to_sign(unsigned)).split(";")
    body_hash = expected.rsplit("\n", 1)[1]
    assert canonical_request(wire(request), names, body_hash) == expected
    check(request)


def test_header_values_are_trimmed_and_repeats_joined() -> None:
    request = sign(
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.CreateCollection",
            "X-Faceledger-Purpose": "  lost   child  ",
        }
    )
    check(request)
    headers = [("x-a", " 1  2 "), ("x-a", "3"), ("host", "h")]
    text = canonical_request(WireRequest("POST", "/", "", headers, b""), ["host", "x-a"], "h0")
    assert "x-a:1 2,3\n" in text


def test_canonical_path_normalisation() -> None:
    assert canonical_path("") == "/"
    assert canonical_path("/a/./b/../../c/") == "/c/"
    assert canonical_path("//") == "/"
    assert canonical_path("/a%20b") == "/a%2520b"


def test_unsigned_extra_headers_are_fine() -> None:
    request = sign()
    request.headers["User-Agent"] = "curl/8"
    check(request)


@pytest.mark.parametrize(
    "changes",
    [
        {"body": BODY + b" "},
        {"method": "PUT"},
        {"raw_path": "/other"},
        {"query_string": "x=1"},
    ],
)
def test_tampering_breaks_the_signature(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidSignatureError, match="does not match"):
        check(sign(), **changes)


def test_tampered_signed_header_breaks_the_signature() -> None:
    request = sign()
    request.headers.replace_header("X-Amz-Target", "RekognitionService.DeleteCollection")
    with pytest.raises(InvalidSignatureError):
        check(request)


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureError) as exc:
        check(sign(secret="not-the-secret"))
    assert exc.value.code == "InvalidSignatureException"
    assert exc.value.http_status == 403


@pytest.mark.parametrize("key", ["AKIDNOBODY", REVOKED_KEY])
def test_unknown_or_revoked_key(key: str) -> None:
    with pytest.raises(UnrecognizedClientError, match="security token included"):
        check(sign(key=key))


def test_missing_authorization() -> None:
    request = sign()
    del request.headers["Authorization"]
    with pytest.raises(MissingAuthenticationTokenError):
        check(request)


def test_wrong_service_in_scope() -> None:
    with pytest.raises(InvalidSignatureError, match="scoped to correct service"):
        check(sign(service="s3"))


@pytest.mark.parametrize(
    ("offset_s", "message"), [(901, "Signature expired"), (-901, "not yet current")]
)
def test_clock_skew(offset_s: int, message: str) -> None:
    request = sign()
    now = signed_at(request) + timedelta(seconds=offset_s)
    with pytest.raises(InvalidSignatureError, match=message):
        verify(wire(request), LOOKUP, now=now)
    verify(wire(request), LOOKUP, now=now, clock_skew_s=3600)
    inside = signed_at(request) + timedelta(seconds=899 if offset_s > 0 else -899)
    verify(wire(request), LOOKUP, now=inside)


def test_security_token_is_signed() -> None:
    request = sign(token="session-token-value")
    assert "x-amz-security-token" in check(request).signed_headers
    request.headers.replace_header("X-Amz-Security-Token", "other")
    with pytest.raises(InvalidSignatureError):
        check(request)


def test_declared_payload_hash_must_match_the_body() -> None:
    request = sign()
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        check(request)


def test_date_header_instead_of_x_amz_date() -> None:
    request = sign(
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "RekognitionService.CreateCollection",
            "Date": "Mon, 01 Jan 2024 00:00:00 GMT",
        }
    )
    assert "X-Amz-Date" not in request.headers
    now = datetime.now(UTC)
    assert "date" in verify(wire(request), LOOKUP, now=now).signed_headers


def test_target_must_be_signed() -> None:
    request = sign(headers={"Content-Type": "application/x-amz-json-1.1"})
    request.headers["X-Amz-Target"] = "RekognitionService.DeleteCollection"
    with pytest.raises(InvalidSignatureError, match="x-amz-target"):
        check(request)


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA1 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/rekognition/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/rekognition, SignedHeaders=host, Signature=00",
        "Bearer abc",
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    request = sign()
    request.headers.replace_header("Authorization", authorization)
    with pytest.raises(IncompleteSignatureError) as exc:
        check(request)
    assert exc.value.code == "IncompleteSignatureException"


def test_scope_date_must_match_request_date() -> None:
    request = sign()
    auth = request.headers["Authorization"]
    stamp = request.headers["X-Amz-Date"][:8]
    request.headers.replace_header("Authorization", auth.replace(stamp, "19991231"))
    with pytest.raises(InvalidSignatureError, match="Date in Credential scope"):
        check(request)
