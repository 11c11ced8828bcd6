"""Drive an ASGI app in-process, one request at a time (no network, no httpx)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def first(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def call(app: Any, method: str, path: str, *, cookies: dict[str, str] | None = None,
         form: dict[str, str] | None = None, scheme: str = "http", body: bytes | None = None,
         content_type: str = "application/x-www-form-urlencoded") -> Answer:
    """``form`` is sent urlencoded; ``body`` as it is, with ``content_type``."""
    if form is not None:
        body = urlencode(form).encode()
    headers = [(b"host", b"testserver")]
    if body is not None:
        headers += [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    body = body or b""
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": scheme, "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "headers": headers, "client": ("10.1.2.3", 5000), "server": ("testserver", 80), "root_path": ""}
    sent: list[dict] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out: dict[str, list[str]] = {}
    for k, v in start.get("headers", []):
        out.setdefault(k.decode().lower(), []).append(v.decode())
    return Answer(start["status"], out, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
