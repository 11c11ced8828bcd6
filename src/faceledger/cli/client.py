"""The CLI's way to a running service: boto3 over the profile, errors mapped back.

Client commands go through the Rekognition API like any SDK would, so a CLI
command and a boto3 call run the same service code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ALL_ERRORS, FaceledgerError, InvalidParameterError, ServiceUnavailableError
from ..profile import Profile, read_profile
from ..settings import Settings

BY_CODE = {cls.code: cls for cls in ALL_ERRORS if cls.code != "InternalServerError"}

KEY_FILE = "faceledger.key_file"
MAX_KEY_FILE_BYTES = 64 * 1024
endpoint_option = click.option("--endpoint", default=None, help="Service URL (default: from the profile).")
profile_option = click.option("--profile", "profile_file", type=click.Path(dir_okay=False), default=None,
                              help="Profile file (default: <data dir>/profile.json).")


def _remember_key_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[KEY_FILE] = value


key_file_option = click.option(
    "--key-file", type=click.Path(dir_okay=False), default=None, expose_value=False, callback=_remember_key_file,
    help="Act as another key: a file written by `keys create --save FILE` (the endpoint still comes from the profile).")


def client_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return endpoint_option(profile_option(key_file_option(fn)))


def read_key_file(path: Path) -> tuple[str, str]:
    """(access key id, secret) from a key file: ``keys create --save``/``--json`` output, or a profile."""
    import json
    import stat

    try:
        with path.open("rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                # a secret others can read is a key others can use (ssh refuses such files too)
                raise InvalidParameterError(
                    f"The key file {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
                    f"`chmod 600 {path}` first.")
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read the key file {path}: {exc.strerror}.") from exc
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise InvalidParameterError(f"The key file {path} is over {MAX_KEY_FILE_BYTES} bytes: not a key file.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise InvalidParameterError(f"The key file {path} is not JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise InvalidParameterError(f"The key file {path} must be a JSON object.")
    key = data.get("AccessKeyId") or data.get("access_key_id")
    secret = data.get("SecretAccessKey") or data.get("secret_access_key")
    if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise InvalidParameterError(f"The key file {path} needs AccessKeyId and SecretAccessKey.")
    return key, secret


def client_profile(endpoint: str | None, profile_file: str | None) -> Profile:
    """The profile a client command uses: the profile file, the environment, then ``--key-file``'s key."""
    path = Path(profile_file) if profile_file else Settings.from_env().data_dir / "profile.json"
    ctx = click.get_current_context(silent=True)
    key_file = ctx.meta.get(KEY_FILE) if ctx is not None else None
    if key_file is None:
        return read_profile(path, endpoint)
    key, secret = read_key_file(Path(key_file))
    prof = read_profile(path, endpoint, need_key=False)
    return Profile(prof.endpoint, key, secret, prof.region)


def rekognition(endpoint: str | None, profile_file: str | None, headers: dict[str, str] | None = None) -> Any:
    import boto3
    from botocore.config import Config

    prof = client_profile(endpoint, profile_file)
    client = boto3.client(
        "rekognition", endpoint_url=prof.endpoint, region_name=prof.region,
        aws_access_key_id=prof.access_key_id, aws_secret_access_key=prof.secret_access_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=120),
    )
    if headers:
        def add(request: Any, **_: Any) -> None:
            for k, v in headers.items():
                request.headers[k] = v

        client.meta.events.register("before-sign.rekognition.*", add)
    return client


def call(fn: Callable[..., Any], **kwargs: Any) -> dict:
    """Run one API call; service errors become FaceledgerError (with exit codes)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

    try:
        out = fn(**{k: v for k, v in kwargs.items() if v is not None})
    except ClientError as exc:
        err = exc.response.get("Error", {})
        cls = BY_CODE.get(err.get("Code", ""), FaceledgerError)
        raise cls(err.get("Message") or str(exc)) from exc
    except EndpointConnectionError as exc:
        raise ServiceUnavailableError(f"Cannot reach the service: {exc}. Is `faceledger serve` running?") from exc
    except ParamValidationError as exc:
        raise InvalidParameterError(str(exc)) from exc
    out = dict(out)
    out.pop("ResponseMetadata", None)
    return out


def all_pages(fn: Callable[..., Any], member: str, **kwargs: Any) -> list:
    """Every item of a paged list operation, following NextToken to the end."""
    items: list = []
    token = None
    while True:
        out = call(fn, NextToken=token, **kwargs)
        items += out.get(member, [])
        token = out.get("NextToken")
        if not token:
            return items


def own_call(endpoint: str | None, profile_file: str | None, operation: str, params: dict,
             headers: dict[str, str] | None = None) -> dict:
    """Call one of faceledger's own operations (X-Amz-Target: FaceledgerService.<Op>), SigV4-signed."""
    import json
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    prof = client_profile(endpoint, profile_file)
    body = json.dumps({k: v for k, v in params.items() if v is not None}).encode()
    req = AWSRequest(method="POST", url=prof.endpoint.rstrip("/") + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"FaceledgerService.{operation}",
        **(headers or {})})
    SigV4Auth(Credentials(prof.access_key_id, prof.secret_access_key), "rekognition", prof.region).add_auth(req)
    http = urllib.request.Request(prof.endpoint.rstrip("/") + "/", data=body, method="POST",
                                  headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(http, timeout=120) as resp:
            return dict(json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
        except ValueError:
            err = {}
        cls = BY_CODE.get(err.get("__type", ""), FaceledgerError)
        raise cls(err.get("Message") or f"HTTP {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise ServiceUnavailableError(f"Cannot reach the service at {prof.endpoint}: {exc.reason}.") from exc
