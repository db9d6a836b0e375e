"""A small read-only HTTP server for the daemon's health check and status.

`GET /health` answers 200 or 503 from a health provider (Railway and Docker restart on a
failing check); `GET /status` returns a status provider's dict as JSON. The server changes
no state: every other method gets 405. It runs stdlib `ThreadingHTTPServer` in a daemon
thread so a slow or stuck client never blocks the trading loop or the process exit, with
bounds (see _Gate): a thread only for a connection that has sent something, at most 32 at
once, every connection closed 10 s after it was accepted, a listen backlog of 128.

Provider errors answer 500 with a generic message and log only the exception class: the
exception text could carry an exchange key or a URL with credentials.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import numbers
import os
import socket
import socketserver
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePath
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from trader.errors import InputError

log = logging.getLogger(__name__)

StatusProvider = Callable[[], Any]
HealthProvider = Callable[[], tuple[bool, str]]

_ALLOWED = "GET, HEAD"
_MAX_DRAIN = 64 * 1024  # bytes of a refused request body read before closing (see _drain)
_POLL = 0.1  # seconds; how quickly stop() is noticed by serve_forever
_REQUEST_TIMEOUT = 10.0  # seconds; a silent client cannot hold a handler thread forever
# Bounds against slowloris and floods: a connection gets a handler thread only once its first
# bytes arrive (an idle socket costs a file descriptor, not a thread); at most _MAX_ACTIVE
# handlers at once (a connection beyond gets a 503 at once); at most _MAX_WAITING idle
# connections (the oldest is dropped for a new one); every connection, idle or trickling its
# request, is closed _REQUEST_TIMEOUT seconds after it was accepted.
_MAX_ACTIVE = 32
_MAX_WAITING = 1024
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
         b"Connection: close\r\nRetry-After: 1\r\n\r\n{\"error\": \"too many requests\"}")


# --- JSON ----------------------------------------------------------------------------------


def to_jsonable(obj: Any, *, default: Callable[[Any], Any] | None = None) -> Any:
    """`obj` as plain JSON types: datetimes as ISO 8601 UTC ("...Z"; naive ones are taken as
    UTC), Decimal and numpy numbers as numbers, NaN and infinities as None, sets and tuples as
    lists. `default` converts anything else; without it such a value raises TypeError.

    A pre-walk rather than a `json.JSONEncoder.default`, because the encoder never calls
    `default` for floats, so NaN could not become null there.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, int):
        return int(obj)  # also bool-free int subclasses such as IntEnum members
    if isinstance(obj, Decimal):
        # A float: /status is read by people and monitors, not used as a ledger.
        return float(obj) if obj.is_finite() else None
    if isinstance(obj, datetime):
        return _iso_utc(obj)
    if isinstance(obj, (date, time)):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, default=default)
    if isinstance(obj, (PurePath, uuid.UUID)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v, default=default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v, default=default) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return to_jsonable(obj.item(), default=default)  # numpy scalars, without importing numpy
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return to_jsonable(float(obj), default=default)
    if default is not None:
        return to_jsonable(default(obj))
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> str:
    """Strict JSON (no NaN tokens) of `obj` after `to_jsonable`."""
    return json.dumps(to_jsonable(obj), allow_nan=False)


def _iso_utc(when: datetime) -> str | None:
    if when != when:  # pandas.NaT is a datetime that is not equal to itself
        return None
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.isoformat().replace("+00:00", "Z")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, datetime):
        return _iso_utc(key) or "null"
    if isinstance(key, enum.Enum):
        return str(key.value)
    return str(key)


# --- $PORT ---------------------------------------------------------------------------------


def port_from_env(environ: Mapping[str, str] = os.environ, default: int = 8080) -> int:
    """The port in `$PORT` (Railway sets it), or `default` when it is unset or empty."""
    raw = environ.get("PORT", "").strip()
    if not raw:
        return default
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    try:
        port = int(raw, 10)
    except ValueError:
        raise InputError(f"environment variable PORT must be a whole number from 1 to 65535, got {shown!r}") from None
    if not 1 <= port <= 65535:
        raise InputError(f"environment variable PORT must be from 1 to 65535, got {port}")
    return port


# --- server --------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung request never blocks process exit
    allow_reuse_address = True  # restart right after a crash despite TIME_WAIT sockets
    # socketserver's default listen backlog of 5 drops connections in a burst of probes;
    # the client then retries only after a 1 s SYN timeout. Accepting costs no thread (see
    # process_request), so the queue drains fast; 128 is the classic SOMAXCONN.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], status: StatusProvider, health: HealthProvider) -> None:
        # IPv6 listen addresses ("::") need an AF_INET6 socket.
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.status_provider = status
        self.health_provider = health
        super().__init__(address, _Handler)
        self._gate = _Gate(self)

    def process_request(self, request: Any, client_address: Any) -> None:
        # not a thread per connection: the gate hands it to one once it has something to read
        self._gate.admit(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        if not self._gate.holds(request):  # socketserver calls this right after process_request
            super().shutdown_request(request)

    def serve_request(self, request: Any, client_address: Any) -> None:
        """A handler thread's work (what ThreadingMixIn's thread does)."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._gate.done(request)
            super().shutdown_request(request)

    def server_close(self) -> None:
        gate = getattr(self, "_gate", None)  # None: the bind failed in __init__
        if gate is not None:
            gate.close()
        super().server_close()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        # for seconds in a container without DNS; the name is only cosmetic.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is not worth that.
        log.debug("health server: error while serving %s", client_address, exc_info=True)


class _Gate:
    """Accepted connections wait here, watched by one thread, until they have bytes to read;
    then they get a handler thread, within the caps. The same thread closes any connection
    older than _REQUEST_TIMEOUT, waiting or in a handler (a slowloris trickle included)."""

    def __init__(self, server: _Server) -> None:
        import selectors

        self.server = server
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.waiting: dict[Any, tuple[float, Any]] = {}  # socket -> (accepted at, address)
        self.active: dict[Any, float] = {}  # socket -> accepted at
        self.closed = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._watch, name="health-gate", daemon=True)
        self.thread.start()

    def holds(self, request: Any) -> bool:
        with self.lock:
            return request in self.waiting or request in self.active

    def admit(self, request: Any, address: Any) -> None:
        import selectors

        with self.lock:
            if self.closed:
                request.close()
                return
            if len(self.waiting) >= _MAX_WAITING:  # the oldest idle connection makes room
                oldest = min(self.waiting, key=lambda r: self.waiting[r][0])
                self._drop(oldest)
            self.waiting[request] = (_monotonic(), address)
            self.selector.register(request, selectors.EVENT_READ)
        self.wake_w.send(b"\0")

    def done(self, request: Any) -> None:
        with self.lock:
            self.active.pop(request, None)

    def _drop(self, request: Any) -> None:  # with the lock held
        self.waiting.pop(request, None)
        try:
            self.selector.unregister(request)
        except (KeyError, ValueError):
            pass
        try:
            request.close()
        except OSError:
            pass

    def _watch(self) -> None:
        while True:
            try:
                ready = self.selector.select(timeout=0.25)
            except (OSError, ValueError):
                ready = []
            with self.lock:
                if self.closed:
                    return
            for key, _ in ready:
                if key.fileobj is self.wake_r:
                    try:
                        self.wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                self._start(key.fileobj)
            self._expire()

    def _start(self, request: Any) -> None:
        with self.lock:
            if request not in self.waiting:
                return
            accepted, address = self.waiting.pop(request)
            self.selector.unregister(request)
            if len(self.active) >= _MAX_ACTIVE:
                busy = True
            else:
                busy = False
                self.active[request] = accepted
        if busy:  # the caps hold: a short answer without a thread, never a wait
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
            self.server.shutdown_request(request)
            return
        threading.Thread(target=self.server.serve_request, args=(request, address), name="health-request",
                         daemon=True).start()

    def _expire(self) -> None:
        cutoff = _monotonic() - _REQUEST_TIMEOUT
        with self.lock:
            for request in [r for r, (t, _) in self.waiting.items() if t < cutoff]:
                self._drop(request)
            late = [r for r, t in self.active.items() if t < cutoff]
        for request in late:  # its handler thread sees the socket end and finishes
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for request in list(self.waiting):
                self._drop(request)
        try:
            self.wake_w.send(b"\0")
        except OSError:
            pass
        self.thread.join(timeout=2)
        self.selector.close()
        self.wake_r.close()
        self.wake_w.close()


def _monotonic() -> float:
    import time as _time

    return _time.monotonic()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "trader-health"
    timeout = _REQUEST_TIMEOUT

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def do_GET(self) -> None:
        path = urlsplit(self.path).path  # a query string is ignored
        if path == "/health":
            self._health()
        elif path == "/status":
            self._status()
        else:
            self._send(404, {"error": "not found"})

    do_HEAD = do_GET  # _send omits the body for HEAD

    def _refuse(self) -> None:
        self._drain()
        self._send(405, {"error": "method not allowed"}, {"Allow": _ALLOWED})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _health(self) -> None:
        try:
            ok, reason = self.server.health_provider()
            ok, reason = bool(ok), str(reason)
        except Exception as exc:
            log.error("health provider raised %s", _qualname(type(exc)), extra={"event": "health_provider_error"})
            self._send(500, {"ok": False, "reason": "internal error"})
            return
        self._send(200 if ok else 503, {"ok": ok, "reason": reason})

    def _status(self) -> None:
        try:
            body = dumps(self.server.status_provider())
        except Exception as exc:  # the provider, or a value it returned that is not JSON
            log.error("status provider raised %s", _qualname(type(exc)), extra={"event": "status_provider_error"})
            self._send(500, {"error": "internal error"})
            return
        self._send(200, body)

    def _drain(self) -> None:
        # Closing a socket with unread request bytes makes Linux send RST, which can destroy
        # the response before the client reads it; so read a small body first.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= _MAX_DRAIN:
            self.rfile.read(length)

    def _send(self, code: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers malformed requests and unknown methods with HTML; keep JSON.
        self.log_error("code %d, message %s", code, message)
        short = self.responses.get(code, ("error", ""))[0]
        self.close_connection = True
        headers = {"Allow": _ALLOWED} if code == 501 else None
        if code < 200 or code in (204, 304):
            self.send_response(code)
            self.end_headers()
            return
        self._send(code, {"error": (message or short)}, headers)

    def log_message(self, format: str, *args: Any) -> None:
        # Silence the default per-request line on stderr; keep it at DEBUG.
        log.debug("health server: %s %s", self.address_string(), format % args)


def _qualname(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class HealthServer:
    """Serves `/health` and `/status` from two providers in a background daemon thread.

    `health()` returns `(ok, reason)`; `status()` returns a JSON-able dict (datetimes,
    Decimals and NaN are handled). Both are called on the server's threads, once per request,
    so they must be thread-safe and quick (read a snapshot; do not call the exchange).
    """

    def __init__(
        self,
        status: StatusProvider,
        health: HealthProvider,
        host: str = "0.0.0.0",
        port: int = 8080,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 to 65535, got {port!r}")
        self._status = status
        self._health = health
        self.host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the free one picked for port 0), else the requested one."""
        return self._port

    @property
    def url(self) -> str:
        """A base URL reaching the server from this host."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> HealthServer:
        if self._server is not None:
            raise RuntimeError("health server already started")
        try:
            server = _Server((self.host, self._port), self._status, self._health)
        except OSError as exc:  # address in use, bad host, privileged port: the user's to fix
            raise InputError(
                f"cannot listen on {self.host}:{self._port} for the health server: {exc.strerror or exc}"
            ) from exc
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _POLL}, name="health-server", daemon=True
        )
        self._thread.start()
        log.info(
            "health server listening on %s:%d", self.host, self._port,
            extra={"event": "health_server_started", "host": self.host, "port": self._port},
        )
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice or before start."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
