"""A local exchange speaking Binance's spot REST API, shipped with the product: `trader demo`
trades against it (no account, no keys, no internet), and `python -m trader.localexchange`
serves it to run your own daemon against or to rehearse a deployment under exchange faults.

ccxt's unmodified binance class talks to it over real HTTP on 127.0.0.1. Its market is a
candle frame replayed by a controllable clock; its account matches MARKET and LIMIT orders
deterministically; faults (latency, HTTP errors, dropped answers, bad JSON, clock skew, orders
left open, partly filled, expired or rejected after acceptance) can be played per endpoint. See server.LocalExchange; the test suite drives it the same way.
"""

from __future__ import annotations

from trader.localexchange.clock import Clock
from trader.localexchange.faults import (
    ClockSkew,
    DropAfterAccept,
    Fate,
    HttpError,
    Latency,
    Malformed,
    OrderFate,
    banned,
    clock_skew,
    drop_after_accept,
    expire,
    expire_later,
    gateway_timeout,
    http_error,
    latency,
    maintenance,
    malformed,
    rate_limited,
    reject_later,
    server_error,
    stay_open,
)
from trader.localexchange.server import LocalExchange, RequestRecord

__all__ = [
    "Clock", "ClockSkew", "DropAfterAccept", "Fate", "HttpError", "Latency", "LocalExchange", "Malformed",
    "OrderFate", "RequestRecord", "banned", "clock_skew", "drop_after_accept", "expire", "expire_later",
    "gateway_timeout", "http_error", "latency", "maintenance", "malformed", "rate_limited", "reject_later",
    "server_error", "stay_open",
]
