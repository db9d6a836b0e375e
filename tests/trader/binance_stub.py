"""A local HTTP server speaking enough of Binance's spot REST API for ccxt's unmodified binance class.

It serves one market with data, BTC/USDT, from tests/data/btcusd-1h.csv (hourly candles only),
and lists ETH/BTC without data: its klines answer -1121 "Invalid symbol.", as Binance does for a
symbol it no longer serves. Every request is logged, and tests can queue failure responses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import ccxt
import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data" / "btcusd-1h.csv"
HOUR_MS = 3_600_000


@dataclass
class Request:
    path: str
    params: dict[str, str]
    status: int = 200
    rows: list[int] = field(default_factory=list)  # open times of the candles served


@dataclass
class Failure:
    status: int
    body: str
    content_type: str = "application/json"


class BinanceStub:
    """Start with start(), build a pointed ccxt instance with exchange(), stop with stop()."""

    def __init__(self, data: Path = DATA) -> None:
        raw = pd.read_csv(data)
        times = pd.to_datetime(raw["timestamp"], utc=True).dt.as_unit("ms")
        self.times = times.astype("int64").to_numpy()
        self.values = raw[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float)
        self.requests: list[Request] = []
        self.failures: list[Failure] = []  # served, in order, instead of the next klines answers
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> BinanceStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                stub._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def exchange(self, **config: object) -> ccxt.binance:
        """An unmodified ccxt.binance whose every API root points at this server, spot only."""
        settings = {
            "enableRateLimit": True,
            "rateLimit": 1,  # keep the real throttle on, but fast for tests
            "timeout": 5000,
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        }
        settings.update(config)
        exchange = ccxt.binance(settings)
        for key, url in list(exchange.urls["api"].items()):
            if isinstance(url, str):
                exchange.urls["api"][key] = self.base_url + urlsplit(url).path
        return exchange

    # -- what tests look at ----------------------------------------------------------------

    def klines(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == "/api/v3/klines"]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        request = Request(parts.path, params)
        with self._lock:
            self.requests.append(request)
            failure = self.failures.pop(0) if parts.path == "/api/v3/klines" and self.failures else None
        if failure is not None:
            request.status = failure.status
            return self._send(handler, failure.status, failure.body, failure.content_type)

        if parts.path == "/api/v3/ping":
            status, body = 200, {}
        elif parts.path == "/api/v3/time":
            status, body = 200, {"serverTime": int(self.times[-1]) + HOUR_MS}
        elif parts.path == "/api/v3/exchangeInfo":
            status, body = 200, self._exchange_info()
        elif parts.path == "/api/v3/klines":
            status, body = self._klines(params, request)
        else:
            return self._send(handler, 404, "<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        request.status = status
        self._send(handler, status, json.dumps(body))

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", f"{content_type};charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-mbx-used-weight", "2")
        handler.send_header("x-mbx-used-weight-1m", "2")
        if status == 429:
            handler.send_header("Retry-After", "1")
        handler.end_headers()
        handler.wfile.write(data)

    def _klines(self, params: dict[str, str], request: Request) -> tuple[int, object]:
        symbol = params.get("symbol")
        if not symbol:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
        if symbol != "BTCUSDT":
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if params.get("interval") != "1h":  # the only interval this data has
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(params.get("limit", 500))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}

        mask = np.ones(len(self.times), dtype=bool)
        if start is not None:
            mask &= self.times >= start
        if end is not None:
            mask &= self.times <= end
        rows = np.flatnonzero(mask)
        # Binance pages forward from startTime; without it, it answers the newest candles.
        rows = rows[:limit] if start is not None else rows[-limit:]
        request.rows = [int(self.times[i]) for i in rows]
        return 200, [self._kline(i) for i in rows]

    def _kline(self, i: int) -> list:
        i = int(i)
        t = int(self.times[i])
        o, h, l, c, v = self.values[i]
        quote = v * (o + c) / 2
        return [
            t, f"{o:.8f}", f"{h:.8f}", f"{l:.8f}", f"{c:.8f}", f"{v:.8f}",
            t + HOUR_MS - 1, f"{quote:.8f}", 100 + i % 900, f"{v / 2:.8f}", f"{quote / 2:.8f}", "0",
        ]

    def _exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": int(self.times[-1]) + HOUR_MS,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [
                _symbol("BTCUSDT", "BTC", "USDT", tick="0.01", step="0.00001", min_qty="0.00001", max_qty="9000.00000000"),
                _symbol("ETHBTC", "ETH", "BTC", tick="0.00001", step="0.0001", min_qty="0.0001", max_qty="100000.00000000"),
            ],
        }


def _symbol(symbol: str, base: str, quote: str, *, tick: str, step: str, min_qty: str, max_qty: str) -> dict:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000", "stepSize": "0.00000000"},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN", "TRD_GRP_004", "TRD_GRP_005"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }


def running_stub() -> Iterator[BinanceStub]:
    """Body of a pytest fixture: a started stub, stopped afterwards."""
    stub = BinanceStub().start()
    try:
        yield stub
    finally:
        stub.stop()
