"""The local exchange, driven by ccxt's unmodified binance class over real HTTP on 127.0.0.1.

The clock starts at 2017-07-01 12:00 UTC, the open of the second candle of btcusd-1h.csv:
    11:00  o 2505.56 h 2513.38 l 2495.12 c 2509.17
    12:00  o 2509.17 h 2512.87 l 2484.99 c 2488.43   <- in progress at the start: price 2509.17
    13:00  o 2488.43 h 2488.43 l 2454.40 c 2454.43
    14:00  o 2454.43 h 2473.93 l 2450.83 c 2459.35
    15:00  o 2459.35 h 2475.00 l 2450.00 c 2467.83
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from urllib.parse import urlencode

import ccxt
import httpx
import pandas as pd
import pytest

from tests.conftest import BTC_1H
from trader.localexchange import (
    LocalExchange,
    clock_skew,
    drop_after_accept,
    http_error,
    latency,
    maintenance,
    malformed,
    rate_limited,
)
from trader.ohlcv import load_ohlcv

HOUR = 3_600_000
T12 = int(pd.Timestamp("2017-07-01T12:00Z").value // 1_000_000)
SYMBOL = "BTC/USDT"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_ohlcv(BTC_1H)


@pytest.fixture
def make(candles: pd.DataFrame) -> Iterator:
    started: list[LocalExchange] = []

    def factory(**kwargs: object) -> LocalExchange:
        exchange = LocalExchange(candles, **kwargs).start()
        started.append(exchange)
        return exchange

    yield factory
    for exchange in started:
        exchange.stop()


@pytest.fixture
def ex(make) -> LocalExchange:
    return make()


def signed_get(ex: LocalExchange, path: str, params: dict, *, secret: str | None = None, key: str | None = None) -> httpx.Response:
    """A hand-signed request, for what ccxt would not send."""
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    signature = hmac.new((secret or ex.secret).encode(), query.encode(), hashlib.sha256).hexdigest()
    return httpx.get(f"{ex.base_url}{path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": key or ex.api_key})


# -- public data -----------------------------------------------------------------------------


def test_load_markets_lists_the_symbol_with_binance_filters(ex: LocalExchange) -> None:
    client = ex.client()
    markets = client.load_markets()
    assert list(markets) == [SYMBOL]
    market = markets[SYMBOL]
    assert market["spot"] and market["active"]
    assert market["precision"]["amount"] == 0.00001 and market["precision"]["price"] == 0.01
    assert market["limits"]["amount"]["min"] == 0.00001 and market["limits"]["cost"]["min"] == 10
    # Spot only, and nothing ccxt asked for went unanswered.
    assert [(r.method, r.path, r.status) for r in ex.requests] == [("GET", "/api/v3/exchangeInfo", 200)]


def test_time_and_klines_follow_the_clock(ex: LocalExchange) -> None:
    client = ex.client()
    assert client.fetch_time() == T12 == ex.clock.now_ms()
    rows = client.fetch_ohlcv(SYMBOL, "1h")
    assert rows == [
        [T12 - HOUR, 2505.56, 2513.38, 2495.12, 2509.17, 114.6],
        [T12, 2509.17, 2509.17, 2509.17, 2509.17, 0.0],  # in progress: only its open is known
    ]

    ex.clock.set(datetime(2017, 7, 1, 13, 30, tzinfo=timezone.utc))
    rows = client.fetch_ohlcv(SYMBOL, "1h", limit=2)
    assert rows == [
        [T12, 2509.17, 2512.87, 2484.99, 2488.43, 157.36],
        [T12 + HOUR, 2488.43, 2488.43, 2488.43, 2488.43, 0.0],
    ]
    assert client.fetch_ticker(SYMBOL)["last"] == 2488.43 == ex.current_price()
    # Paging forward from a start time never reveals the future.
    assert [r[0] for r in client.fetch_ohlcv(SYMBOL, "1h", since=T12 - HOUR, limit=500)] == [T12 - HOUR, T12, T12 + HOUR]


def test_tickers_and_depth_quote_the_current_price(ex: LocalExchange) -> None:
    client = ex.client()
    ticker = client.fetch_ticker(SYMBOL)
    assert ticker["last"] == ticker["bid"] == ticker["ask"] == 2509.17
    assert ticker["high"] == 2513.38 and ticker["low"] == 2495.12  # the closed candle and the open
    assert client.fetch_order_book(SYMBOL)["bids"][0][0] == 2509.17
    assert httpx.get(f"{ex.base_url}/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json() == {
        "symbol": "BTCUSDT", "price": "2509.17000000"}
    assert client.fetch_bids_asks([SYMBOL])[SYMBOL]["ask"] == 2509.17


def test_bad_public_requests_get_binance_errors(ex: LocalExchange) -> None:
    client = ex.client()
    with pytest.raises(ccxt.BadRequest, match="-1120"):
        client.fetch_ohlcv(SYMBOL, "4h")  # the data is hourly; nothing is made up
    answer = httpx.get(f"{ex.base_url}/api/v3/klines", params={"symbol": "ETHBTC", "interval": "1h"})
    assert answer.status_code == 400 and answer.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert httpx.get(f"{ex.base_url}/sapi/v1/capital/config/getall").status_code == 404


# -- orders ----------------------------------------------------------------------------------


def test_market_order_fills_at_the_open_in_partial_fills(make) -> None:
    ex = make(partial_fills=3)
    client = ex.client()
    order = client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "intent-1"})

    assert order["id"] == "1" and order["clientOrderId"] == "intent-1"
    assert order["status"] == "closed" and order["filled"] == 0.01 and order["average"] == 2509.17
    assert [t["id"] for t in order["trades"]] == ["1", "2", "3"]
    assert [t["amount"] for t in order["trades"]] == [0.00333, 0.00333, 0.00334]
    for trade in order["trades"]:
        assert trade["price"] == 2509.17
        assert trade["fee"] == {"currency": "USDT", "cost": pytest.approx(0.001 * trade["amount"] * 2509.17, abs=1e-8)}

    fetched = client.fetch_order(None, SYMBOL, {"clientOrderId": "intent-1"})
    assert (fetched["id"], fetched["status"], fetched["filled"], fetched["timestamp"]) == ("1", "closed", 0.01, T12)
    trades = client.fetch_my_trades(SYMBOL)
    assert [(t["id"], t["order"], t["side"], t["takerOrMaker"]) for t in trades] == [
        ("1", "1", "buy", "taker"), ("2", "1", "buy", "taker"), ("3", "1", "buy", "taker")]
    assert [o["client_order_id"] for o in ex.orders] == ["intent-1"]
    assert [t["trade_id"] for t in ex.trades] == [1, 2, 3]

    fees = sum(t["commission"] for t in ex.trades)
    balance = client.fetch_balance()
    assert balance["BTC"]["free"] == 0.01
    assert balance["USDT"]["free"] == pytest.approx(10000 - 25.0917 - fees, abs=1e-8)


def test_market_sell_and_quote_order_qty(make) -> None:
    ex = make(balances={"USDT": 1000.0, "BTC": 0.5})
    client = ex.client()
    sell = client.create_order(SYMBOL, "market", "sell", 0.1)
    assert sell["status"] == "closed" and sell["cost"] == pytest.approx(250.917)
    assert ex.balances()["USDT"]["free"] == pytest.approx(1000 + 250.917 * 0.999, abs=1e-8)
    # ccxt turns a market buy with a cost into quoteOrderQty; the quantity is floored to the step.
    buy = client.create_order(SYMBOL, "market", "buy", None, params={"cost": 100})
    assert buy["filled"] == 0.03985  # floor(100 / 2509.17, 0.00001)


def test_duplicate_client_id_is_refused_only_while_the_order_is_open(ex: LocalExchange) -> None:
    client = ex.client()
    client.create_order(SYMBOL, "limit", "buy", 0.01, 2400, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order(SYMBOL, "limit", "buy", 0.01, 2400, {"clientOrderId": "dup"})
    client.cancel_order(None, SYMBOL, {"clientOrderId": "dup"})
    again = client.create_order(SYMBOL, "limit", "buy", 0.01, 2400, {"clientOrderId": "dup"})
    assert again["id"] == "2"  # Binance only checks open orders: a closed order's id is reusable
    assert client.fetch_order(None, SYMBOL, {"clientOrderId": "dup"})["id"] == "2"  # the newest


def test_client_order_id_pattern(ex: LocalExchange) -> None:
    client = ex.client()
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "has space"})
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "x" * 37})
    assert client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "A.b:c/d_e-1"})["id"] == "1"


def test_insufficient_balance(make) -> None:
    ex = make(balances={"USDT": 100.0})
    client = ex.client()
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "market", "buy", 0.04)  # 100.37 USDT + fee
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "market", "sell", 0.001 * 5)  # no BTC at all
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(SYMBOL, "limit", "buy", 0.05, 2000)  # 100 USDT + fee to lock
    assert ex.orders == [] and ex.balances()["USDT"] == {"free": 100.0, "locked": 0.0, "total": 100.0}
    client.create_order(SYMBOL, "market", "buy", 0.0398)  # 99.87 + 0.10 fee fits


def test_filters_lot_size_notional_price(ex: LocalExchange) -> None:
    client = ex.client()
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        client.create_order(SYMBOL, "market", "buy", 0.001)  # 2.51 USDT < 10
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):  # ccxt would floor it, so sign by hand
        client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.012345"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                                   "price": "2400.005", "timeInForce": "GTC"})
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01"})
    assert ex.orders == []


def test_limit_orders_rest_lock_then_fill_as_the_clock_moves(make) -> None:
    ex = make(balances={"USDT": 10000.0, "BTC": 1.0})
    client = ex.client()
    buy = client.create_order(SYMBOL, "limit", "buy", 0.01, 2460.00, {"clientOrderId": "buy-low"})
    sell = client.create_order(SYMBOL, "limit", "sell", 0.01, 2512.00, {"clientOrderId": "sell-high"})
    assert buy["status"] == sell["status"] == "open" and buy["trades"] == []
    balances = ex.balances()
    assert balances["USDT"]["locked"] == pytest.approx(24.6 + 0.0246)  # cost + fee, held
    assert balances["BTC"]["locked"] == 0.01
    assert len(client.fetch_open_orders(SYMBOL)) == 2

    ex.clock.set(T12 + HOUR)  # 12:00 closes: high 2512.87 reaches the sell, low 2484.99 not the buy
    assert client.fetch_order(sell["id"], SYMBOL)["status"] == "closed"
    assert client.fetch_order(buy["id"], SYMBOL)["status"] == "open"
    ex.clock.set(T12 + 2 * HOUR)  # 13:00 closes with low 2454.40
    assert client.fetch_order(buy["id"], SYMBOL)["status"] == "closed"
    assert [(t["order_id"], t["price"], t["is_maker"], t["time"]) for t in ex.trades] == [
        (2, 2512.0, True, T12 + HOUR - 1), (1, 2460.0, True, T12 + 2 * HOUR - 1)]
    balances = ex.balances()
    assert balances["USDT"]["locked"] == 0 and balances["BTC"]["locked"] == 0
    assert balances["BTC"]["free"] == pytest.approx(1.0)
    assert balances["USDT"]["free"] == pytest.approx(10000 - 24.6 * 1.001 + 25.12 * 0.999, abs=1e-8)
    assert client.fetch_open_orders(SYMBOL) == []


def test_limit_order_fills_one_part_per_candle(make) -> None:
    ex = make(partial_fills=3)
    client = ex.client()
    order = client.create_order(SYMBOL, "limit", "buy", 0.01, 2455.00)
    ex.clock.set(T12 + HOUR + HOUR // 2)  # 12:00 low 2484.99, 13:00 open 2488.43: no
    assert client.fetch_order(order["id"], SYMBOL)["filled"] == 0
    ex.clock.set(T12 + 2 * HOUR)  # 13:00 closed (low 2454.40) and 14:00 opened at 2454.43: two parts
    fetched = client.fetch_order(order["id"], SYMBOL)
    assert (fetched["status"], fetched["filled"], fetched["info"]["status"]) == ("open", 0.00666, "PARTIALLY_FILLED")
    assert [t["time"] for t in ex.trades] == [T12 + 2 * HOUR - 1, T12 + 2 * HOUR]
    ex.clock.set(T12 + 4 * HOUR - 1)  # 15:00 opened at 2459.35: no
    assert len(ex.trades) == 2
    ex.clock.set(T12 + 4 * HOUR)  # 15:00 closed with low 2450.00: the last part
    assert client.fetch_order(order["id"], SYMBOL)["status"] == "closed"
    assert [t["qty"] for t in ex.trades] == [0.00333, 0.00333, 0.00334]
    assert ex.balances()["USDT"]["locked"] == 0


def test_marketable_limit_fills_at_once_and_ioc_expires(ex: LocalExchange) -> None:
    client = ex.client()
    taker = client.create_order(SYMBOL, "limit", "buy", 0.01, 2600.00)
    assert taker["status"] == "closed" and taker["average"] == 2509.17  # the better price
    assert ex.balances()["USDT"]["locked"] == 0  # what was locked at 2600 came back
    ioc = client.create_order(SYMBOL, "limit", "buy", 0.01, 2400.00, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ex.balances()["USDT"]["locked"] == 0


def test_cancel(ex: LocalExchange) -> None:
    client = ex.client()
    order = client.create_order(SYMBOL, "limit", "buy", 0.01, 2400.00, {"clientOrderId": "to-cancel"})
    canceled = client.cancel_order(None, SYMBOL, {"clientOrderId": "to-cancel"})
    assert canceled["status"] == "canceled" and canceled["id"] == order["id"]
    assert ex.balances()["USDT"] == {"free": 10000.0, "locked": 0.0, "total": 10000.0}
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        client.cancel_order(order["id"], SYMBOL)  # no longer open
    ex.clock.set(T12 + 10 * HOUR)
    assert ex.trades == []  # a canceled order never fills


def test_unknown_order(ex: LocalExchange) -> None:
    client = ex.client()
    with pytest.raises(ccxt.OrderNotFound, match="Order does not exist"):
        client.fetch_order(None, SYMBOL, {"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("42", SYMBOL)


def test_my_trades_and_all_orders_paginate(make) -> None:
    ex = make(partial_fills=5)
    client = ex.client()
    for i in range(3):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": f"o{i}"})
        ex.clock.advance(HOUR)
    assert [t["trade_id"] for t in ex.trades] == list(range(1, 16))

    seen, from_id = [], 0
    while True:
        page = client.fetch_my_trades(SYMBOL, limit=4, params={"fromId": from_id})
        seen += [int(t["id"]) for t in page]
        if len(page) < 4:
            break
        from_id = max(int(t["id"]) for t in page) + 1  # ccxt sorts by time, not id
    assert sorted(seen) == list(range(1, 16))
    assert [t["id"] for t in client.fetch_my_trades(SYMBOL, since=T12 + HOUR, limit=3)] == ["6", "7", "8"]
    assert [t["id"] for t in client.fetch_my_trades(SYMBOL, limit=2)] == ["14", "15"]  # the newest
    assert len(client.fetch_my_trades(SYMBOL, params={"orderId": 2})) == 5
    with pytest.raises(ccxt.BadRequest, match="-1128"):
        client.fetch_my_trades(SYMBOL, since=T12, params={"fromId": 3})
    assert [o["clientOrderId"] for o in client.fetch_orders(SYMBOL)] == ["o0", "o1", "o2"]
    assert [o["id"] for o in client.fetch_orders(SYMBOL, since=T12 + HOUR)] == ["2", "3"]


def test_balances_agree_with_trades(make) -> None:
    ex = make(balances={"USDT": 5000.0, "BTC": 0.2}, partial_fills=2, fee_rate=0.00075)
    client = ex.client()
    client.create_order(SYMBOL, "market", "buy", 0.3)
    client.create_order(SYMBOL, "limit", "sell", 0.25, 2470.00)
    client.create_order(SYMBOL, "limit", "buy", 0.1, 2452.50)
    resting = client.create_order(SYMBOL, "limit", "buy", 0.2, 2000.00)
    for hour in range(1, 6):
        ex.clock.set(T12 + hour * HOUR)
        client.create_order(SYMBOL, "market", "sell" if hour % 2 else "buy", 0.01)

    trades = ex.trades
    assert len(trades) > 10
    bought = sum(t["qty"] for t in trades if t["side"] == "BUY")
    sold = sum(t["qty"] for t in trades if t["side"] == "SELL")
    spent = sum(t["quote_qty"] + t["commission"] for t in trades if t["side"] == "BUY")
    received = sum(t["quote_qty"] - t["commission"] for t in trades if t["side"] == "SELL")
    assert all(t["commission"] == pytest.approx(0.00075 * t["quote_qty"], abs=1e-8) for t in trades)

    balances = ex.balances()
    assert balances["BTC"]["total"] == pytest.approx(0.2 + bought - sold, abs=1e-9)
    assert balances["USDT"]["total"] == pytest.approx(5000 - spent + received, abs=1e-6)
    assert balances["USDT"]["locked"] == pytest.approx(0.2 * 2000 * 1.00075)  # only the resting order holds
    assert client.fetch_open_orders(SYMBOL)[0]["id"] == resting["id"]
    reported = client.fetch_balance()
    for asset in ("BTC", "USDT"):
        assert (reported[asset]["free"], reported[asset]["used"]) == pytest.approx(
            (balances[asset]["free"], balances[asset]["locked"]), abs=1e-8)


def test_ids_are_deterministic(make) -> None:
    runs = []
    for _ in range(2):
        ex = make(partial_fills=2)
        client = ex.client()
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "a"})
        client.create_order(SYMBOL, "limit", "buy", 0.01, 2460, {"clientOrderId": "b"})
        ex.clock.set(T12 + 3 * HOUR)
        runs.append((ex.orders, ex.trades))
    assert runs[0] == runs[1]
    assert [o["order_id"] for o in runs[0][0]] == [1, 2]


# -- authentication --------------------------------------------------------------------------


def test_bad_signature_and_bad_key_are_rejected(ex: LocalExchange) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        ex.client(secret="not-the-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        ex.client(apiKey="not-the-key").fetch_balance()
    answer = signed_get(ex, "/api/v3/account", {}, secret="wrong")
    assert answer.status_code == 400 and answer.json()["code"] == -1022
    assert signed_get(ex, "/api/v3/account", {}).status_code == 200
    unsigned = httpx.get(f"{ex.base_url}/api/v3/account", headers={"X-MBX-APIKEY": ex.api_key},
                         params={"timestamp": int(time.time() * 1000)})
    assert unsigned.json()["code"] == -1102
    assert ex.orders == []


def test_skewed_timestamps_are_rejected(ex: LocalExchange) -> None:
    client = ex.client()
    ex.inject("GET /api/v3/account", clock_skew(60_000))  # server 60 s ahead: outside recvWindow
    with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
        client.fetch_balance()
    client.fetch_balance()  # the fault was used up
    ex.clock.skew_ms = -5_000  # server behind: our timestamps are ahead of it
    with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
        client.fetch_balance()
    ex.clock.skew_ms = 0
    client.fetch_balance()


# -- faults ----------------------------------------------------------------------------------


def test_drop_after_accept_places_the_order_but_answers_nothing(ex: LocalExchange) -> None:
    client = ex.client()
    ex.inject("POST /api/v3/order", drop_after_accept())
    with pytest.raises(ccxt.NetworkError):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "lost-answer"})
    assert [o["client_order_id"] for o in ex.orders] == ["lost-answer"]
    assert client.fetch_order(None, SYMBOL, {"clientOrderId": "lost-answer"})["status"] == "closed"
    assert ex.requests[-2].status is None  # recorded as dropped


def test_http_error_faults(ex: LocalExchange) -> None:
    client = ex.client()
    client.load_markets()
    ex.inject("/api/v3/ticker/*", rate_limited(retry_after=7), times=2)
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):
            client.fetch_ticker(SYMBOL)
        assert client.last_response_headers["Retry-After"] == "7"
    client.fetch_ticker(SYMBOL)
    ex.inject("*", maintenance())
    with pytest.raises(ccxt.OnMaintenance):
        client.fetch_ticker(SYMBOL)
    ex.inject("GET *", http_error(502, None, "Bad Gateway"))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_ticker(SYMBOL)
    ex.inject("POST /api/v3/order", http_error(503, -1008, "Server is busy"))
    with pytest.raises(ccxt.BaseError):
        client.create_order(SYMBOL, "market", "buy", 0.01)
    assert ex.orders == []  # an error fault answers instead of handling
    assert ex.faults.pending() == 0


def test_latency_outlasting_the_client_timeout_still_places_the_order(ex: LocalExchange) -> None:
    client = ex.client(timeout=300)
    client.load_markets()
    ex.inject("POST /api/v3/order", latency(0.8))
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "slow"})
    assert time.monotonic() - started < 0.75
    deadline = time.monotonic() + 3
    while not ex.orders and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [o["client_order_id"] for o in ex.orders] == ["slow"]


def test_malformed_answer(ex: LocalExchange) -> None:
    client = ex.client()
    client.load_markets()
    ex.inject("GET /api/v3/klines", malformed())
    answer = httpx.get(f"{ex.base_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h"})
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert len(client.fetch_ohlcv(SYMBOL, "1h")) == 2  # one time only


def test_fault_patterns_and_thread_safety(ex: LocalExchange) -> None:
    ex.inject("DELETE *", maintenance(), times=None)
    ex.inject("/api/v3/ping", http_error(500, -1001, "Internal error"), times=20)
    answers: list[int] = []

    def ping() -> None:
        answers.append(httpx.get(f"{ex.base_url}/api/v3/ping").status_code)

    threads = [threading.Thread(target=ping) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] * 10 + [500] * 20
    assert httpx.get(f"{ex.base_url}/api/v3/time").status_code == 200
    assert ex.faults.pending() == 1  # the DELETE rule stays
    with pytest.raises(TypeError):
        ex.inject("*", "not a fault")  # type: ignore[arg-type]


def test_concurrent_orders_get_unique_ids(make) -> None:
    ex = make(balances={"USDT": 1_000_000.0})
    errors: list[BaseException] = []

    def trade(n: int) -> None:
        try:
            ex.client().create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": f"c{n}"})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=trade, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(o["order_id"] for o in ex.orders) == list(range(1, 13))
    assert ex.balances()["BTC"]["free"] == pytest.approx(0.12)


def test_needs_two_candles_and_known_columns(candles: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="two candles"):
        LocalExchange(candles.iloc[:1])
    with pytest.raises(ValueError, match="missing columns"):
        LocalExchange(candles.drop(columns="volume"))
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        LocalExchange(candles, symbol="BTCUSDT")
