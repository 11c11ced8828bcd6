"""The web console at ``/console``: review, audit and reports for people, on the service's own functions.

Server-rendered HTML (Jinja2 templates served by Starlette) with one CSS
file and no script, all shipped in the package. :func:`mount_console` adds
it to the API's Starlette app; the API's routes are untouched.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import audit, auth, report, review
from .sessions import PATH
from .web import HERE, Console


def console_mount(svc: Any) -> Mount:
    c = Console(svc)

    async def signin_get(request: Request) -> Response:
        return await auth.signin_get(c, request)

    async def signin_post(request: Request) -> Response:
        return await auth.signin_post(c, request)

    routes = [
        Route("/", c.page(auth.home), methods=["GET"]),
        Route("/signin", signin_get, methods=["GET"]),
        Route("/signin", signin_post, methods=["POST"]),
        Route("/signout", c.page(auth.signout), methods=["POST"]),
        Route("/review", c.page(review.queue, "GetReview"), methods=["GET"]),
        Route("/review/{seq:int}", c.page(review.search, "GetReview"), methods=["GET"]),
        Route("/review/{seq:int}", c.page(review.decide, "ReviewCandidate"), methods=["POST"]),
        Route("/review/{seq:int}/probe.jpg", c.page(review.image, "ReviewCandidate"), methods=["GET"]),
        Route("/review/{seq:int}/face/{face_id}.jpg", c.page(review.image, "ReviewCandidate"), methods=["GET"]),
        Route("/audit", c.page(audit.browse, "ReadLedger"), methods=["GET"]),
        Route("/audit/verify", c.page(audit.verify, "ReadLedger"), methods=["GET"]),
        Route("/audit/export", c.page(audit.export, "ReadLedger"), methods=["GET"]),
        Route("/audit/{seq:int}", c.page(audit.record, "ReadLedger"), methods=["GET"]),
        Route("/report", c.page(report.report, "ReadReport"), methods=["GET"]),
        Route("/halt", c.page(report.halt, "Halt"), methods=["POST"]),
        Route("/resume", c.page(report.resume, "Resume"), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    mount = Mount(PATH, routes=routes)
    mount.console = c  # type: ignore[attr-defined]  # for tests that reach the session store
    return mount


def mount_console(app: Starlette, svc: Any) -> Console:
    """Put the console in front of the API's catch-all POST route; returns it (tests use its sessions)."""
    mount = console_mount(svc)
    app.router.routes.insert(0, mount)
    app.router.routes.insert(0, Route(PATH, lambda request: RedirectResponse(PATH + "/", status_code=308)))
    return mount.console  # type: ignore[attr-defined,no-any-return]
