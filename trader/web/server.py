"""The daemon's HTTP server on $PORT: uvicorn running the dashboard's Starlette app on its own
event loop in a daemon thread, so a slow or stuck client never blocks the trading loop.

Bounds against hostile clients (tests/reliability/test_health_bounds.py):
an idle socket costs a file descriptor, not a thread (asyncio); a connection that has not
completed a request's headers REQUEST_TIMEOUT seconds after it was accepted (or after its
last request) is closed, so a slowloris trickle ends; headers over MAX_HEADER_BYTES are
refused; beyond MAX_CONNECTIONS open connections (idle ones too) a request is answered 503
at once (uvicorn's plain-text answer); the listen backlog is 1024. Long requests (an event
stream) are not cut by the deadline: they have their own bounds in trader.web.stream.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import TracebackType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from trader.errors import InputError

log = logging.getLogger("trader.web")

REQUEST_TIMEOUT = 10.0  # seconds from accept (or the last request) to a complete request head
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 4096  # uvicorn's limit_concurrency: the excess gets 503 at once
BACKLOG = 1024
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
              b"Content-Length: 38\r\nConnection: close\r\n\r\n{\"error\": \"request headers too large\"}")


class _Guarded(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline (uvicorn has none of its own)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._seen_cycle = None
        self._cycles = self._checked = 0
        self._head_bytes = 0
        self._deadline = self.loop.call_later(REQUEST_TIMEOUT, self._expire)

    def data_received(self, data: bytes) -> None:
        # h11's own limit applies to an incomplete head only: a whole oversized head in one read passes it
        if self.conn.their_state is h11.IDLE:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
            self._cycles += 1
            self._head_bytes = 0

    def _expire(self) -> None:
        if self.transport.is_closing():
            return
        serving = self.cycle is not None and not self.cycle.response_complete
        if not serving and self._cycles == self._checked:  # idle or trickling for a whole window
            self.transport.close()
            return
        self._checked = self._cycles
        self._deadline = self.loop.call_later(REQUEST_TIMEOUT, self._expire)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)


class WebServer:
    """Serves an ASGI app on host:port in a background daemon thread (port 0: a free one)."""

    def __init__(self, app, host: str = "0.0.0.0", port: int = 8080) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 to 65535, got {port!r}")
        self.app, self.host, self._port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> WebServer:
        if self._server is not None:
            raise RuntimeError("web server already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:  # bound here, not by uvicorn: a busy port is the user's to fix (one line, exit 2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise InputError(f"cannot listen on {self.host}:{self._port} for the web server: "
                             f"{exc.strerror or exc}") from None
        self._port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app, loop="asyncio", http=_Guarded, ws="none", lifespan="off", log_config=None,
            log_level="warning", access_log=False, server_header=False, date_header=True,
            # + 1: uvicorn counts the connection asking among the open ones, so MAX_CONNECTIONS
            # alone would serve one fewer
            limit_concurrency=MAX_CONNECTIONS + 1, timeout_keep_alive=5, backlog=BACKLOG,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=self._serve, args=(server, sock), name="web-server", daemon=True)
        self._thread.start()
        while not server.started and self._thread.is_alive():
            self._thread.join(0.01)
        log.info("web server listening on %s:%d", self.host, self._port,
                 extra={"event": "web_server_started", "host": self.host, "port": self._port})
        return self

    @staticmethod
    def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except Exception:  # never a traceback on the user's terminal; /health then fails to answer
            log.exception("web server stopped by an error")
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice or before start."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.should_exit = True
        server.force_exit = True  # open event streams are not waited for
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
