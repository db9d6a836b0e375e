"""LocalExchange: the HTTP server, its lifecycle, and what you can look at and steer while it
runs (its clock, orders, trades, balances, the latest requests, faults to play).

    with LocalExchange(candles, partial_fills=3) as ex:
        client = ex.client()                 # an unmodified ccxt.binance pointed here
        client.create_order("BTC/USDT", "market", "buy", 0.01)
        ex.clock.set(ex.clock.now_ms() + 3_600_000)
        ex.inject("POST /api/v3/order", drop_after_accept())
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import ccxt
import pandas as pd

from trader.exchange_client import point_api_at
from trader.localexchange.api import BinanceApi, Request
from trader.localexchange.clock import Clock
from trader.localexchange.faults import (
    ClockSkew,
    DropAfterAccept,
    Fault,
    FaultInjector,
    HttpError,
    Latency,
    Malformed,
    OrderFate,
)
from trader.localexchange.fees import FeeMode
from trader.localexchange.market import Candles, SymbolSpec
from trader.localexchange.matching import Engine

_NOT_FOUND = "<html><body><h1>404 Not Found</h1></body></html>"
REQUEST_HISTORY = 100_000  # requests kept for `requests`: a week of a busy daemon, a few MB at most
request_log = logging.getLogger("trader.localexchange.requests")  # INFO: one line per request served
request_log.setLevel(logging.WARNING)  # silent unless asked (--log-requests): the demo logs at INFO


@dataclass(frozen=True)
class RequestRecord:
    """One request as the exchange saw it: what a client asked, and how it was answered."""

    method: str
    path: str
    params: dict[str, str]
    status: int | None  # None: the connection was dropped without an answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent clients must not wait on SYN retries
    block_on_close = False  # a handler sleeping on a latency fault must not hold up stop()


class LocalExchange:
    """A local exchange speaking Binance's spot REST API for one symbol, driven by candles and a
    clock; `fee_mode` (trader.localexchange.fees) says in which currency it charges fees,
    `stop_orders=False` makes it one without stop orders, `oco=False` one with stop orders but
    no OCO lists."""

    def __init__(
        self,
        candles: pd.DataFrame,
        symbol: str = "BTC/USDT",
        balances: dict[str, float] | None = None,
        api_key: str = "test-key",
        secret: str = "test-secret",
        partial_fills: int = 1,
        fee_rate: float = 0.001,
        *,
        fee_mode: FeeMode | str = FeeMode.QUOTE,
        stop_orders: bool = True,
        oco: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.spec = SymbolSpec.parse(symbol)
        if not stop_orders:  # an exchange without stop orders, as some are
            self.spec = dataclasses.replace(self.spec, order_types=("LIMIT", "MARKET"), oco=False)
        elif not oco:
            self.spec = dataclasses.replace(self.spec, oco=False)
        self.candles = Candles(candles, self.spec.tick)
        self.clock = Clock(self.candles.open_time(1))  # the first candle is closed, the second in progress
        self.api_key = api_key
        self.secret = secret
        self.faults = FaultInjector()
        self._lock = threading.RLock()
        self._engine = Engine(
            self.spec, self.candles, self.clock, {"USDT": 10000.0} if balances is None else balances,
            fee_rate=fee_rate, partial_fills=partial_fills, fee_mode=FeeMode(fee_mode),
        )
        self._api = BinanceApi(self._engine, api_key=api_key, secret=secret, lock=self._lock)
        self._requests: deque[RequestRecord] = deque(maxlen=REQUEST_HISTORY)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalExchange:
        if self._server is not None:
            return self
        exchange = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                exchange._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                exchange._serve(self, "POST")

            def do_DELETE(self) -> None:  # noqa: N802
                exchange._serve(self, "DELETE")

            def do_PUT(self) -> None:  # noqa: N802
                exchange._serve(self, "PUT")

            def log_message(self, format: str, *args: object) -> None:  # request_log says it, if asked
                pass

        self._server = _Server(self._address, Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-exchange", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local exchange is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client(self, **config: object) -> ccxt.binance:
        """An unmodified ccxt.binance pointed here, with keys, loading spot markets only: to
        try the exchange by hand from a script or a notebook, as the daemon would call it.

        fetchCurrencies and fetchMargins are off: both call sapi endpoints this exchange does
        not serve. `config` overrides the settings; an `options` dict is merged into ours.
        """
        options = {
            "fetchMarkets": {"types": ["spot"]},
            "fetchMargins": False,
            "fetchCurrencies": False,
            "defaultType": "spot",
        }
        options.update(dict(config.pop("options", None) or {}))  # type: ignore[call-overload]
        settings: dict[str, object] = {
            "apiKey": self.api_key,
            "secret": self.secret,
            "enableRateLimit": True,
            "rateLimit": 1,  # keep ccxt's throttle on, but fast
            "timeout": 5000,
            "options": options,
        }
        settings.update(config)
        exchange = ccxt.binance(settings)
        point_api_at(exchange, self.base_url)
        return exchange

    # -- looking at it and steering it -----------------------------------------------------

    def inject(self, pattern: str, fault: Fault, times: int | None = 1) -> None:
        """Queue a fault for requests matching `pattern` (see trader.localexchange.faults)."""
        self.faults.inject(pattern, fault, times)

    @property
    def orders(self) -> list[dict]:
        """Every order ever placed, oldest first (snapshots; amounts as floats)."""
        with self._lock:
            self._engine.sync()
            return [o.to_dict() for o in self._engine.orders]

    @property
    def trades(self) -> list[dict]:
        with self._lock:
            self._engine.sync()
            return [t.to_dict() for t in self._engine.trades]

    def balances(self) -> dict[str, dict[str, float]]:
        """asset -> {"free", "locked", "total"}."""
        with self._lock:
            self._engine.sync()
            return {
                asset: {"free": float(free), "locked": float(locked), "total": float(free + locked)}
                for asset, (free, locked) in self._engine.wallet.items()
            }

    def deposit(self, asset: str, amount: float) -> None:
        """Credit (or, negative, debit) the account's free balance, as a transfer or a trade
        outside the bot would: what the daemon must notice rather than assume."""
        from decimal import Decimal

        with self._lock:
            self._engine.sync()
            self._engine.wallet.setdefault(asset.upper(), [Decimal(0), Decimal(0)])[0] += Decimal(str(amount))

    @property
    def requests(self) -> list[RequestRecord]:
        """The latest requests served (at most REQUEST_HISTORY), oldest first: what a client
        asked, how often, and how it was answered."""
        with self._lock:
            return list(self._requests)

    def current_price(self) -> float | None:
        price = self.candles.current_price(self.clock.now_ms())
        return None if price is None else float(price)

    # -- HTTP ------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        request = Request(method, parts.path, parts.query, body, handler.headers)
        record_params = {k: v for k, v in request.params().items() if k != "signature"}

        def record(status: int | None) -> None:
            with self._lock:
                self._requests.append(RequestRecord(method, parts.path, record_params, status))
            request_log.info("%s %s %s", method, parts.path, "dropped" if status is None else status)

        if self._api.route(method, parts.path) is None:
            record(404)
            return _send(handler, 404, _NOT_FOUND, "text/html")

        faults = self.faults.take(method, parts.path)
        delay = sum(f.seconds for f in faults if isinstance(f, Latency))
        if delay:
            time.sleep(delay)
        error = next((f for f in faults if isinstance(f, HttpError)), None)
        if error is not None:
            record(error.status)
            if error.raw_body is not None:
                return _send(handler, error.status, error.raw_body, "text/html", error.retry_after)
            body_json = {"code": error.code, "msg": error.msg} if error.code is not None else {"msg": error.msg}
            return _send(handler, error.status, json.dumps(body_json), retry_after=error.retry_after)

        malformed = next((f for f in faults if isinstance(f, Malformed)), None)
        if malformed is not None and not malformed.process:
            record(200)
            return _send(handler, 200, '{"code": 0, "msg": ')
        skew = sum(f.ms for f in faults if isinstance(f, ClockSkew))
        fate = next((f for f in faults if isinstance(f, OrderFate)), None)
        status, answer = self._api.handle(request, skew, fate)

        if any(isinstance(f, DropAfterAccept) for f in faults):
            record(None)
            _drop(handler)
            return
        text = json.dumps(answer)
        if malformed is not None:
            record(status)
            return _send(handler, status, text[: max(1, len(text) // 2)])
        record(status)
        _send(handler, status, text)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: str,
    content_type: str = "application/json",
    retry_after: float | None = None,
) -> None:
    data = body.encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", f"{content_type};charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-mbx-used-weight", "1")
        handler.send_header("x-mbx-used-weight-1m", "1")
        if retry_after is not None:
            handler.send_header("Retry-After", f"{retry_after:g}")
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a latency fault outlived its timeout)


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without a byte of answer."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
