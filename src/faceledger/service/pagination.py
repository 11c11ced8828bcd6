"""Opaque, tamper-evident pagination tokens.

A token names the operation, the collection and the last key of the page, and
carries a short HMAC so a client cannot forge or splice one. Tokens change on
every page (the key changes) and stay well under Rekognition's 255 characters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable

from ..errors import InvalidPaginationTokenError


class Paginator:
    """Makes and reads tokens; keys too long to fit 255 characters go to a server-side cursor."""

    def __init__(self, secret: bytes, save: Callable[[str, list], None] | None = None,
                 load: Callable[[str], list | None] | None = None) -> None:
        self._secret = secret
        self._save, self._load = save, load

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:12]

    def make(self, operation: str, scope: str, after: str) -> str:
        body = json.dumps([operation, scope, after], separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(self._mac(body) + body).decode().rstrip("=")
        if len(token) <= 255:
            return token
        if self._save is None:
            raise InvalidPaginationTokenError("The page key is too long to page over.")
        cursor = secrets.token_urlsafe(12)
        self._save(f"page:{cursor}", [operation, scope, after])
        mac = base64.urlsafe_b64encode(self._mac(cursor.encode())).decode().rstrip("=")
        return f"~{cursor}.{mac}"

    def read(self, token: str | None, operation: str, scope: str) -> str | None:
        if token is None:
            return None
        if token.startswith("~") and self._load is not None:
            return self._read_cursor(token, operation, scope)
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:12], raw[12:]
            op, sc, after = json.loads(body)
        except (ValueError, TypeError) as exc:
            raise InvalidPaginationTokenError("NextToken is not a token this service issued.") from exc
        if not hmac.compare_digest(mac, self._mac(body)) or op != operation or sc != scope:
            raise InvalidPaginationTokenError("NextToken does not belong to this request.")
        return str(after)

    def _read_cursor(self, token: str, operation: str, scope: str) -> str:
        cursor, _, mac = token[1:].partition(".")
        expected = base64.urlsafe_b64encode(self._mac(cursor.encode())).decode().rstrip("=")
        saved = self._load(f"page:{cursor}") if self._load and hmac.compare_digest(mac, expected) else None
        if not saved or saved[0] != operation or saved[1] != scope:
            raise InvalidPaginationTokenError("NextToken does not belong to this request.")
        return str(saved[2])


def page(items: list, limit: int, key: str) -> tuple[list, str | None]:
    """Split a fetched list of limit + 1 items into the page and the last key (if more)."""
    if len(items) > limit:
        items = items[:limit]
        return items, str(items[-1][key])
    return items, None
