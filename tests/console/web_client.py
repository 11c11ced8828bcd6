"""A minimal cookie-keeping HTTP client for the console (what a browser does, without one)."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: str
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def set_cookies(self) -> list[str]:
        return [v for k, v in self.headers if k.lower() == "set-cookie"]

    def field(self, name: str) -> str:
        m = re.search(rf'name="{name}" value="([^"]*)"', self.body)
        assert m, f"no {name} field in page"
        return m.group(1)


@dataclass
class Browserless:
    endpoint: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        u = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        body = urlencode(form).encode() if form is not None else None
        h = {"Host": u.netloc, **(headers or {})}
        if body is not None:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        reply = Reply(resp.status, resp.getheaders(), raw.decode("utf-8", "replace"), raw)
        conn.close()
        for raw in reply.set_cookies():
            c = SimpleCookie()
            c.load(raw)
            for name, morsel in c.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return reply

    def sign_in(self, key: tuple[str, str]) -> Reply:
        page = self.request("GET", "/console/signin")
        return self.request("POST", "/console/signin", {"token": page.field("token"), "next": "/console/",
                                                        "access_key_id": key[0], "secret_access_key": key[1]})
