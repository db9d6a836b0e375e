"""The Starlette app on $PORT: `/health` and `/status` (their contracts unchanged), the
dashboard page and its static files, the REST API under `/api`, the event stream `/events`
and the controls. Ledger reads run in Starlette's thread pool, never on the event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from trader.health import dumps

from . import data
from .controls import Controls, control
from .stream import MAX_STREAMS, EventHub, EventStream, parse_after, read_events

log = logging.getLogger("trader.web")

_STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
# the page loads only its own files: a script injected into a report could not load or send anything
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class Site:
    """What the app serves from: the daemon's providers and ledger."""

    status: Callable[[], Any]
    health: Callable[[], tuple[bool, str]]
    factory: Any
    book: str
    config_path: Path | None = None
    data_dir: Path = Path("data")
    token: str | None = None


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json",
                    headers={**_HEADERS, **(headers or {})})


# -- /health and /status: what monitors and Railway read ----------------------------------------

def _health(request: Request) -> Response:
    try:
        ok, reason = request.app.state.site.health()
        ok, reason = bool(ok), str(reason)
    except Exception as exc:
        log.error("health provider raised %s", exc.__class__.__name__, extra={"event": "health_provider_error"})
        return json_response({"ok": False, "reason": "internal error"}, 500)
    return json_response({"ok": ok, "reason": reason}, 200 if ok else 503)


def _status(request: Request) -> Response:
    try:
        body = dumps(request.app.state.site.status())
    except Exception as exc:  # the provider, or a value it returned that is not JSON
        log.error("status provider raised %s", exc.__class__.__name__, extra={"event": "status_provider_error"})
        return json_response({"error": "internal error"}, 500)
    return Response(body, media_type="application/json", headers=_HEADERS)


# -- the page --------------------------------------------------------------------------------

def _file(name: str) -> Response:
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if name == "index.html":
        headers.update({"Content-Security-Policy": _CSP, "Referrer-Policy": "no-referrer"})
    return Response(body, media_type=_STATIC[name], headers=headers)


def _index(request: Request) -> Response:
    return _file("index.html")


def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:  # an allow-list: no path from the client ever reaches the file system
        raise HTTPException(404)
    return _file(name)


# -- the REST API ----------------------------------------------------------------------------

def _read(request: Request, fn, *args) -> Response:
    site: Site = request.app.state.site
    with site.factory() as s:
        return json_response(fn(s, *args))


def api_status(request: Request) -> Response:
    """The daemon now: state, mode, version and its YAML, position, P&L, approvals, goals scorecard."""
    site: Site = request.app.state.site
    with site.factory() as s:
        out = data.overview(s, site.book)
    out["controls"] = "enabled" if site.token else "read-only"
    try:
        out["healthy"], out["health"] = site.health()
    except Exception:
        out["healthy"], out["health"] = False, "internal error"
    return json_response(out)


def api_trades(request: Request) -> Response:
    """The round trips, newest first (the open one included, without exit)."""
    return _read(request, data.trades, request.app.state.site.book)


def api_equity(request: Request) -> Response:
    """Equity and drawdown over time, with the fills and halts to mark on the chart."""
    return _read(request, data.equity, request.app.state.site.book)


def api_reviews(request: Request) -> Response:
    """Every Hermes review, newest first."""
    return _read(request, data.reviews)


def api_review(request: Request) -> Response:
    """One review: its Markdown, rendered to HTML, and its chart's address."""
    with request.app.state.site.factory() as s:
        out = data.review(s, request.path_params["id"])
    if out is None:
        raise HTTPException(404, "no such review")
    return json_response(out)


def api_review_chart(request: Request) -> Response:
    """The review's equity chart (PNG)."""
    from trader.ledger.models import Review

    with request.app.state.site.factory() as s:
        row = s.get(Review, request.path_params["id"])
        path = data.chart_path(row) if row is not None else None
    if path is None:
        raise HTTPException(404, "no chart for this review")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def api_versions(request: Request) -> Response:
    """Strategy versions (with their YAML) and Hermes' experiments with their evidence."""
    return _read(request, data.versions)


def api_events(request: Request) -> Response:
    """A page of the event log after `?after=ID` (at most `?limit=N`, 1-1000), oldest first."""
    after = parse_after(None, request.query_params.get("after"))
    raw = request.query_params.get("limit", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ValueError(f"limit must be a whole number from 1 to 1000, got {raw[:20]!r}")
    return json_response(read_events(request.app.state.site.factory, after, None, int(raw)))


async def events(request: Request):
    """Server-Sent Events: every ledger event after `Last-Event-ID` (or `?after=ID`), then live."""
    hub: EventHub = request.app.state.hub
    after = parse_after(request.headers.get("last-event-id"), request.query_params.get("after"))
    if hub.streams >= MAX_STREAMS:
        return json_response({"error": "too many open streams; retry shortly"}, 503, {"Retry-After": "5"})
    await hub.start()
    return EventStream(hub, after)


def openapi(request: Request) -> Response:
    """This API's description (OpenAPI 3)."""
    paths: dict[str, dict] = {}
    for route in request.app.routes:
        if isinstance(route, Route) and route.path.startswith(("/api", "/events", "/health", "/status")):
            doc = (route.endpoint.__doc__ or "").strip().splitlines()
            for method in sorted((route.methods or set()) - {"HEAD"}):
                paths.setdefault(route.path, {})[method.lower()] = {
                    "summary": doc[0] if doc else route.path,
                    **({"security": [{"bearer": []}]} if route.path.startswith("/api/control") else {})}
    return json_response({"openapi": "3.0.3", "info": {"title": "hermes-trader dashboard", "version": "1"},
                          "paths": paths, "components": {"securitySchemes": {
                              "bearer": {"type": "http", "scheme": "bearer",
                                         "description": "TRADER_DASHBOARD_TOKEN"}}}})


# -- errors: JSON, never a traceback ------------------------------------------------------------

async def _http_error(request: Request, exc: HTTPException) -> Response:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = "GET, HEAD" if request.url.path in ("/health", "/status") else headers.get("Allow", "")
    message = exc.detail if isinstance(exc.detail, str) else "error"
    return json_response({"error": message.lower() if exc.status_code in (404, 405) else message},
                         exc.status_code, headers)


async def _bad_value(request: Request, exc: ValueError) -> Response:
    return json_response({"error": str(exc)}, 400)


class _Guard:
    """Any error an endpoint did not handle: a 500 in JSON, and a log line naming only the
    exception's class (its text could carry a key; Starlette would log the traceback)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log.error("dashboard: %s on %s", exc.__class__.__name__, scope.get("path"), extra={"event": "web_error"})
            if not started and scope["type"] == "http":
                await json_response({"error": "internal error"}, 500)(scope, receive, send)


def build_app(site: Site) -> Starlette:
    get = ["GET", "HEAD"]
    routes = [
        Route("/health", _health, methods=get), Route("/status", _status, methods=get),
        Route("/", _index, methods=get), Route("/static/{name}", _static, methods=get),
        Route("/api/status", api_status, methods=get), Route("/api/trades", api_trades, methods=get),
        Route("/api/equity", api_equity, methods=get), Route("/api/reviews", api_reviews, methods=get),
        Route("/api/reviews/{id:int}", api_review, methods=get),
        Route("/api/reviews/{id:int}/chart.png", api_review_chart, methods=get),
        Route("/api/versions", api_versions, methods=get), Route("/api/events", api_events, methods=get),
        Route("/events", events, methods=["GET"]),
        Route("/api/control/{action}", control, methods=["POST"]),
        Route("/api/openapi.json", openapi, methods=get),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard)],
                    exception_handlers={HTTPException: _http_error, ValueError: _bad_value})
    app.state.site = site
    app.state.hub = EventHub(site.factory)
    app.state.controls = Controls(site.factory, site.book, site.config_path, site.data_dir, site.token or None)
    return app
