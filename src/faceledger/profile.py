"""The client profile: where the service is and which key to use.

``faceledger serve`` writes ``<data_dir>/profile.json`` (mode 0600) on first
start with the endpoint and the admin key, as the AWS CLI keeps credentials in
a file. Client commands read it (or ``--endpoint``, ``--profile`` and the
``FACELEDGER_ENDPOINT`` / ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
variables, which win over the file).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceUnavailableError, StorageFullError


@dataclass(frozen=True)
class Profile:
    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def __repr__(self) -> str:
        return f"Profile(endpoint={self.endpoint!r}, access_key_id={self.access_key_id!r}, secret=***)"


def write_profile(path: Path, profile: Profile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover temp file keeps its old mode through O_CREAT
        with os.fdopen(fd, "w") as fh:
            json.dump(profile.__dict__, fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise StorageFullError(
                f"The disk holding {path.parent} is full: could not write {path.name}. "
                "Free space there, then retry.") from exc
        raise


def read_profile(path: Path | None, endpoint: str | None = None, *, need_key: bool = True) -> Profile:
    """The profile at ``path`` with the environment's overrides; ``need_key=False`` when a key comes from elsewhere."""
    data: dict = {}
    if path is not None and path.is_file():
        data = json.loads(path.read_text())
    env = os.environ
    endpoint = endpoint or env.get("FACELEDGER_ENDPOINT") or data.get("endpoint")
    key = env.get("AWS_ACCESS_KEY_ID") or data.get("access_key_id")
    secret = env.get("AWS_SECRET_ACCESS_KEY") or data.get("secret_access_key")
    if not need_key and endpoint:
        return Profile(endpoint, key or "", secret or "", data.get("region", "us-east-1"))
    if not endpoint or not key or not secret:
        raise ServiceUnavailableError(
            f"No service profile at {path}; start the service with `faceledger serve` "
            "(it writes one) or pass --endpoint and set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
        )
    return Profile(endpoint, key, secret, data.get("region", "us-east-1"))
