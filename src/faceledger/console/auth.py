"""Sign-in, sign-out and the home page.

The sign-in form is guarded by a double-submit token (a random cookie that
the form must echo), so another site cannot sign a browser in under its own
key. A successful sign-in opens a new server-side session (a fresh id, never
one the browser offered) and sets its cookie HttpOnly, SameSite=Strict,
Secure when the request came over TLS, scoped to /console.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from ..errors import AccessDeniedError, FaceledgerError
from .sessions import COOKIE, PATH, SIGNIN_COOKIE
from .web import Console, Ctx


def _safe_next(target: str | None) -> str:
    """Only a console path may follow sign-in (no open redirect)."""
    if target and target.startswith(PATH + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PATH + "/"


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def signin_form(console: Console, request: Request, status: int = 200, error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    ended = request.query_params.get("ended") == "1"
    try:
        response = console.render(request, "signin.html", None, status, token=token, error=error,
                                  next=_safe_next(request.query_params.get("next")), ended=ended)
    except FaceledgerError as exc:  # the store is down (the halt banner reads it): its error page, not a 500
        return console.error(request, exc)
    _cookie(response, request, SIGNIN_COOKIE, token, 600)
    return response


async def signin_get(console: Console, request: Request) -> Response:
    return signin_form(console, request)


async def signin_post(console: Console, request: Request) -> Response:
    try:
        form = await console.form(request)
        cookie, field = request.cookies.get(SIGNIN_COOKIE, ""), form.get("token")
        if not cookie or not isinstance(field, str) or not hmac.compare_digest(cookie.encode(), field.encode()):
            raise AccessDeniedError("The sign-in form expired or came from another site; sign in again.")
        key_id, secret = form.get("access_key_id"), form.get("secret_access_key")
        session_id = console.sessions.new_id()
        client = request.client
        principal = await console.call(console.signin.sign_in, key_id if isinstance(key_id, str) else "",
                                       secret if isinstance(secret, str) else "",
                                       client.host if client else None, session_id)
    except FaceledgerError as exc:
        status = 429 if exc.code == "ThrottlingException" else 403 if isinstance(exc, AccessDeniedError) \
            else exc.http_status if exc.http_status >= 500 else 400  # 503: the store is down, not a bad key
        return signin_form(console, request, status, exc.message)
    old = await console.call(console.sessions.close, request.cookies.get(COOKIE) or "")
    if old is not None:  # signing in again replaces the browser's old session, and says so
        await console.call(console.signin.sign_out, old.key_id, client.host if client else None, old.id, "replaced")
    await console.call(console.sessions.open, session_id, principal.access_key_id)
    await console.record_ended()  # sessions that opening this one pruned or evicted
    target = form.get("next")
    response = console.redirect(_safe_next(target if isinstance(target, str) else None))
    _cookie(response, request, COOKIE, session_id, None)
    response.delete_cookie(SIGNIN_COOKIE, path=PATH)
    return response


async def signout(console: Console, ctx: Ctx) -> Response:
    await console.call(console.sessions.close, ctx.session.id)
    client = ctx.request.client
    await console.call(console.signin.sign_out, ctx.principal.access_key_id, client.host if client else None,
                       ctx.session.id, "sign-out")
    response = console.redirect(f"{PATH}/signin?signedout=1")
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


async def home(console: Console, ctx: Ctx) -> Response:
    return console.render(ctx.request, "home.html", ctx)
