"""The dashboard's controls: halt, resume, Hermes' apply mode (approve, revoke) and rollback.

Each needs `Authorization: Bearer $TRADER_DASHBOARD_TOKEN`, compared in constant time; without
the variable the dashboard is read-only (403). A missing or wrong token is 401. POST only. The
token never reaches a log, an event or an answer. Each control calls the one function the
command line calls (trader.risk, hermes.apply, hermes.consent). Live trading is never granted
here: approving apply mode from the dashboard never lets promoted versions inherit a live
approval (that is `hermes approve --live`, on the command line).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from trader.errors import InputError
from trader.ledger import store

log = logging.getLogger("trader.web")

MAX_BODY = 4096  # bytes of a control's JSON body
READ_ONLY = "read-only: TRADER_DASHBOARD_TOKEN is not set on the daemon, so the dashboard changes nothing"


@dataclass(frozen=True)
class Controls:
    factory: object
    book: str
    config_path: Path | None
    data_dir: Path
    token: str | None  # None or empty: read-only

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    def refusal(self, request: Request) -> JSONResponse | None:
        """The 401/403 answer for a request that may not act, else None."""
        if not self.enabled:
            return JSONResponse({"error": READ_ONLY}, status_code=403)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _unauthorized("this control needs the header Authorization: Bearer <TRADER_DASHBOARD_TOKEN>")
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.token.encode("utf-8")):
            log.warning("dashboard: a control was refused: wrong token", extra={"event": "control_refused"})
            return _unauthorized("wrong token")
        return None


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="trader"'})


async def _body(request: Request) -> dict:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise InputError(f"the request body is over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InputError("the request body must be JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def _text(body: dict, key: str, default: str | None = None, limit: int = 200) -> str | None:
    value = body.get(key, default)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InputError(f"{key!r} must be text of at most {limit} characters")
    return value


def _halt(c: Controls, body: dict) -> str:
    from trader.risk import halt

    reason = _text(body, "reason") or "halted from the dashboard"
    with c.factory.begin() as s:
        halt(s, c.book, reason, data={"by": "dashboard"})
    return "halted: the daemon places no new orders from its next tick"


def _resume(c: Controls, body: dict) -> str:
    from hermes.apply import resume_book

    keep = body.get("keep", False)
    if not isinstance(keep, bool):
        raise InputError("'keep' must be true or false")
    if c.config_path is None:
        keep = True  # no strategy file to apply a fix to (a replay's daemon)
    return resume_book(c.factory, c.config_path, c.data_dir, c.book, datetime.now(timezone.utc),
                       keep=keep, reason="resumed from the dashboard")


def _approve(c: Controls, body: dict) -> str:
    from hermes.consent import approve_apply

    approve_apply(c.factory, live_inherits=False, by="the dashboard")
    return ("approved: the next review applies proven changes (live trading of promoted versions still "
            "needs `trader approve --live`, or `hermes approve --live`, on the command line)")


def _revoke(c: Controls, body: dict) -> str:
    from hermes.consent import revoke_apply

    revoked = revoke_apply(c.factory, by="the dashboard")
    return "revoked: Hermes is read-only from the next review" if revoked else "Hermes was not in apply mode"


def _rollback(c: Controls, body: dict) -> str:
    from hermes.consent import rollback

    version = _text(body, "version", limit=16)
    if not version:
        raise InputError("'version' is required: a strategy version id the dashboard lists")
    if c.config_path is None:
        raise InputError("this daemon has no strategy file to roll back")
    done = rollback(c.factory, c.config_path, version, c.data_dir, datetime.now(timezone.utc),
                    by="from the dashboard")
    return (f"version {done.target} restored: the daemon trades it from its next tick" if done.changed
            else f"the strategy file already is version {done.current}")


ACTIONS = {"halt": _halt, "resume": _resume, "approve": _approve, "revoke": _revoke, "rollback": _rollback}


async def control(request: Request) -> JSONResponse:
    """POST /api/control/{action}: one of ACTIONS, with the bearer token."""
    from starlette.concurrency import run_in_threadpool

    c: Controls = request.app.state.controls
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        return JSONResponse({"error": f"unknown control; known: {', '.join(ACTIONS)}"}, status_code=404)
    refused = c.refusal(request)
    if refused is not None:
        return refused
    try:
        body = await _body(request)
        message = await run_in_threadpool(action, c, body)
    except InputError as exc:
        return JSONResponse({"error": store.scrub(str(exc))}, status_code=400)
    except LookupError as exc:  # the book has never run
        return JSONResponse({"error": str(exc)}, status_code=409)
    log.info("dashboard control %s: %s", request.path_params["action"], message,
             extra={"event": "control", "action": request.path_params["action"]})
    return JSONResponse({"ok": True, "message": message})
