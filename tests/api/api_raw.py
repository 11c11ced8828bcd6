"""Send hand-built (optionally botocore-signed) requests, bypassing client-side validation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import boto3
from api_fakes import ACCESS_KEY, SECRET
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

JSON_11 = "application/x-amz-json-1.1"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def make_client(url: str, key: str = ACCESS_KEY, secret: str = SECRET) -> Any:
    """A real boto3 Rekognition client for ``url`` that never retries."""
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=NO_RETRIES,
    )


def signed_headers(
    url: str,
    body: bytes,
    target: str,
    *,
    key: str = ACCESS_KEY,
    secret: str = SECRET,
    content_type: str = JSON_11,
    token: str | None = None,
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": content_type, "X-Amz-Target": target},
    )
    SigV4Auth(Credentials(key, secret, token), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """POST and return (status, headers with lower-cased names, decoded JSON body)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, hdrs = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, hdrs = exc.code, exc.read(), exc.headers
    return status, {k.lower(): v for k, v in hdrs.items()}, json.loads(raw) if raw else None


def call(url: str, operation: str, params: Any, **sign: Any) -> tuple[int, dict[str, str], Any]:
    """A signed call with an arbitrary (possibly invalid) JSON body."""
    body = params if isinstance(params, bytes) else json.dumps(params).encode()
    target = operation if "." in operation else f"RekognitionService.{operation}"
    return post(url + "/", body, signed_headers(url + "/", body, target, **sign))
