"""The console's plumbing: who is signed in, CSRF, rendering, and how errors become pages.

Every page handler is wrapped by :meth:`Console.page`, which finds the
session (server-side, see :mod:`.sessions`), looks the key up again, refuses
a role that may not use the page (the same role table the API enforces),
checks the CSRF token and origin of every POST, runs the handler, and turns a
FaceledgerError into a page with the right status. Service calls run off the
event loop. No business rule lives here: pages call service functions.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ..errors import (
    AccessDeniedError,
    ConflictError,
    FaceledgerError,
    InvalidParameterError,
    ResourceNotFoundError,
    ThrottlingError,
)
from ..service.console_sessions import StoredSessions
from ..service.context import Principal, may
from ..service.core import Service
from ..service.report import counts_text
from ..service.signin import SignIn
from .sessions import COOKIE, PATH, Session, Sessions

log = logging.getLogger("faceledger.console")
HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 64 * 1024
# No script at all; styles and images only from the console itself.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
NAV = (("Review queue", "/console/review", "GetReview"), ("Audit", "/console/audit", "ReadLedger"),
       ("Reports", "/console/report", "ReadReport"))


@dataclass
class Ctx:
    """What a page handler gets: the request, the session and the principal behind it."""

    request: Request
    session: Session
    principal: Principal
    form: FormData | None = None

    def transport(self) -> dict[str, Any]:
        """The context dict ``Service.dispatch`` takes from any transport (no client-set purpose/case)."""
        client = self.request.client
        return {"request_id": str(uuid.uuid4()), "remote": client.host if client else None,
                "faceledger_headers": {}, "signed_headers": [], "user_agent": self.request.headers.get("user-agent")}


Handler = Callable[["Console", Ctx], Awaitable[Response]]


class Console:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.sessions = Sessions(svc.settings.console_session_idle_s, svc.settings.console_session_max_s,
                                 backend=StoredSessions(svc))
        self.signin = SignIn(svc)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["utc"] = utc
        self.templates.env.filters["counts"] = counts_text
        self.templates.env.filters["sci"] = lambda v: "-" if v is None else f"{float(v):.2e}"

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def dispatch(self, ctx: Ctx, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """The API's own entry point: same role check, same service function, same ledger record."""
        return await self.call(self.svc.dispatch, operation, params, ctx.principal, ctx.transport())

    # -- pages -------------------------------------------------------------
    def page(self, handler: Handler, operation: str | None = None) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ctx: Ctx | Response | None = None
            try:
                ctx = await self._signed_in(request)
                if isinstance(ctx, Response):
                    return ctx
                if operation is not None and not may(ctx.principal, operation):
                    raise AccessDeniedError(f"Your key has role '{ctx.principal.role}', which may not use this page.")
                if request.method == "POST":
                    ctx.form = await self.form(request)
                    if not ctx.session.csrf_ok(ctx.form.get("csrf")):
                        raise AccessDeniedError("The form's CSRF token is missing or wrong; reload the page and retry.")
                return await handler(self, ctx)
            except FaceledgerError as exc:
                return self.error(request, exc, ctx if isinstance(ctx, Ctx) else None)
            except Exception:
                log.exception("console %s %s failed", request.method, request.url.path)
                return self.error(request, FaceledgerError("Something went wrong on the server; it is logged."),
                                  ctx if isinstance(ctx, Ctx) else None)
        return endpoint

    async def _signed_in(self, request: Request) -> Ctx | Response:
        # in a thread: sessions live in the store, shared by every API process
        session, ended = await self.call(self.sessions.get, request.cookies.get(COOKIE))
        if session is not None and ended:
            client = request.client
            await self.call(self.signin.sign_out, session.key_id, client.host if client else None, session.id, ended)
            session = None
        principal = await self.call(self.svc.lookup_key, session.key_id) if session else None
        if session is None or principal is None or principal.revoked:
            if session is not None and await self.call(self.sessions.close, session.id) is not None:
                client = request.client
                await self.call(self.signin.sign_out, session.key_id, client.host if client else None,
                                session.id, "revoked")
            if request.method != "GET":
                raise AccessDeniedError("Sign in first: this session has ended.")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            why = "&ended=1" if ended else ""
            return self.secure(RedirectResponse(f"{PATH}/signin?next={quote(target)}{why}", status_code=303))
        return Ctx(request, session, principal)

    async def record_ended(self) -> None:
        """A ConsoleSignOut for each session that ended without a request of its own noticing."""
        for session, why in self.sessions.take_ended():
            await self.call(self.signin.sign_out, session.key_id, None, session.id, why, session.ref)

    async def form(self, request: Request) -> FormData:
        """A small urlencoded form, from this origin."""
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            raise AccessDeniedError(f"Console forms must declare a length of at most {MAX_FORM_BYTES} bytes.")
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise AccessDeniedError("The form was posted from another site.")
        try:
            return await request.form(max_files=0, max_fields=64)
        except (HTTPException, MultiPartException) as exc:  # a file, too many fields, a broken multipart body
            raise InvalidParameterError(f"The form could not be read: {getattr(exc, 'detail', exc)}") from exc

    def render(self, request: Request, template: str, ctx: Ctx | None, status: int = 200,
               **values: Any) -> Response:
        principal = ctx.principal if ctx else None
        nav = [(label, href) for label, href, op in NAV if principal is not None and may(principal, op)]
        try:
            halt = self.svc.halted()
        except FaceledgerError:
            if status < 500:
                raise  # the page fails (error() renders it); an error page itself must not
            halt = None  # the store is what failed: the error page says so, without the halt banner
        response = self.templates.TemplateResponse(request, template, {
            "principal": principal, "nav": nav, "halt": halt, "csrf": ctx.session.csrf if ctx else "",
            "may": (lambda op: principal is not None and may(principal, op)), "path": request.url.path,
            **values}, status_code=status)
        return self.secure(response)

    def error(self, request: Request, exc: FaceledgerError, ctx: Ctx | None = None) -> Response:
        status = 403 if isinstance(exc, AccessDeniedError) else 404 if isinstance(exc, ResourceNotFoundError) \
            else 429 if isinstance(exc, ThrottlingError) else 409 if isinstance(exc, ConflictError) \
            else 400 if exc.http_status < 500 else exc.http_status  # 503: the store is down, retry
        return self.render(request, "error.html", ctx, status, error=exc, code=exc.code)

    @staticmethod
    def secure(response: Response) -> Response:
        h = response.headers
        h["Cache-Control"] = "no-store"
        h["Content-Security-Policy"] = CSP
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"
        h["X-Frame-Options"] = "DENY"
        return response

    def redirect(self, url: str) -> Response:
        return self.secure(RedirectResponse(url, status_code=303))


def utc(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(float(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def epoch(value: str | None) -> float | None:
    """An ``<input type=datetime-local>`` or ISO date, read as UTC; empty is None."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()
    except ValueError as exc:
        raise InvalidParameterError(f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC).") from exc
