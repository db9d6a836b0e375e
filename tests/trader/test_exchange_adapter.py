"""ExchangeAdapter against the local exchange: shapes, paging, rounding and every error translation.

The keys are recognisable on purpose: no exception text, repr or log line may contain them.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal

import ccxt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import BTC_1H
from trader.errors import (
    ConfigError,
    ExchangeError,
    InsufficientFunds,
    OperationalExchangeError,
    OrderOutcomeUnknown,
    OrderRefused,
    OrderRejected,
    TemporaryExchangeError,
)
from trader.domain import FillReport
from trader.exchange import Credentials, ExchangeAdapter, ExchangeOrder, MarketRules
from trader.localexchange import (
    LocalExchange,
    banned,
    clock_skew,
    drop_after_accept,
    gateway_timeout,
    http_error,
    latency,
    maintenance,
    malformed,
    rate_limited,
    server_error,
)
from trader.ohlcv import COLUMNS, load_ohlcv

KEY = "LEAKYKEY-AKIA0123456789abcdef"
SECRET = "LEAKYSECRET+/=9876543210zyxwvu"
HOUR = 3_600_000
T12 = datetime(2017, 7, 1, 12, tzinfo=timezone.utc)
SYMBOL = "BTC/USDT"


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_ohlcv(BTC_1H)


@pytest.fixture
def make(candles: pd.DataFrame) -> Iterator[Callable[..., LocalExchange]]:
    started: list[LocalExchange] = []

    def factory(**kwargs: object) -> LocalExchange:
        exchange = LocalExchange(candles, api_key=KEY, secret=SECRET, **kwargs).start()
        started.append(exchange)
        return exchange

    yield factory
    for exchange in started:
        exchange.stop()


@pytest.fixture
def ex(make) -> LocalExchange:
    return make(partial_fills=3)


def adapter_for(ex: LocalExchange, **kwargs: object) -> ExchangeAdapter:
    kwargs.setdefault("credentials", Credentials(KEY, SECRET))
    kwargs.setdefault("api_url", ex.base_url)
    return ExchangeAdapter("binance", SYMBOL, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def adapter(ex: LocalExchange) -> ExchangeAdapter:
    return adapter_for(ex, timeout_ms=2000)


def assert_clean(exc: BaseException) -> None:
    """Neither key shows in the message, the repr or a printed traceback."""
    texts = [str(exc), repr(exc), *map(str, exc.args), "".join(traceback.format_exception(exc))]
    for text in texts:
        assert KEY not in text and SECRET not in text, text


# -- market data and rules -------------------------------------------------------------------


def test_market_rules_load_once(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    rules = adapter.market_rules()
    assert rules == MarketRules(SYMBOL, "BTC", "USDT", amount_step=0.00001, price_step=0.01,
                                min_amount=0.00001, min_notional=10.0)
    adapter.market_rules()
    adapter.fetch_price()
    assert [r.path for r in ex.requests].count("/api/v3/exchangeInfo") == 1


@pytest.mark.parametrize(("amount", "rounded"), [
    (0.123456789, 0.12345), (0.3, 0.3), (0.00001, 0.00001), (0.000019999, 0.00001),
    (0.000009, 0.0), (1.0, 1.0), (2.675, 2.675),
])
def test_round_amount_floors_to_the_step(adapter: ExchangeAdapter, amount: float, rounded: float) -> None:
    assert adapter.round_amount(amount) == rounded


def test_round_amount_never_rounds_up(adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    step = Decimal("0.00001")

    @settings(max_examples=300, deadline=None)
    @given(st.floats(min_value=0, max_value=1e4, allow_nan=False))
    def check(amount: float) -> None:
        rounded = adapter.round_amount(amount)
        assert rounded <= amount
        assert Decimal(repr(amount)) - Decimal(repr(rounded)) < step
        assert Decimal(repr(rounded)) % step == 0

    check()
    with pytest.raises(ValueError):
        adapter.round_amount(float("nan"))


def test_fetch_candles_has_load_ohlcv_shape_and_follows_the_clock(
    ex: LocalExchange, adapter: ExchangeAdapter, candles: pd.DataFrame
) -> None:
    ex.clock.set(T12.replace(hour=15))
    frame = adapter.fetch_candles("1h", 4)
    assert list(frame.columns) == list(COLUMNS)
    assert (frame.dtypes == "float64").all()
    assert frame.index.name == "timestamp" and str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert list(frame.index) == list(pd.date_range("2017-07-01T12:00Z", periods=4, freq="h"))
    pd.testing.assert_frame_equal(frame.iloc[:-1], candles.loc[frame.index[:-1]], check_freq=False)
    last = frame.iloc[-1]  # the candle in progress: its open only
    assert last["open"] == last["high"] == last["low"] == last["close"] == 2459.35 and last["volume"] == 0
    assert adapter.fetch_price() == 2459.35


# -- orders ----------------------------------------------------------------------------------


def test_create_market_order_and_fetch_it_by_client_id(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    order = adapter.create_market_order("buy", 0.01, "intent-7")
    assert isinstance(order, ExchangeOrder)
    assert (order.order_id, order.client_order_id, order.status, order.side) == ("1", "intent-7", "closed", "buy")
    assert (order.amount, order.filled, order.average) == (0.01, 0.01, 2509.17)
    assert [f.trade_id for f in order.fills] == ["1", "2", "3"]
    assert sum(f.amount for f in order.fills) == pytest.approx(0.01)
    for fill in order.fills:
        assert isinstance(fill, FillReport)
        assert (fill.exchange_order_id, fill.client_order_id, fill.side, fill.price) == ("1", "intent-7", "buy", 2509.17)
        assert fill.fee == pytest.approx(0.001 * fill.amount * 2509.17, abs=1e-8) and fill.fee_currency == "USDT"
        assert fill.time == T12

    fetched = adapter.fetch_order("intent-7")
    assert fetched == order  # the fills come from myTrades, with the same ids, amounts and times
    assert adapter.fetch_order("never-sent") is None


def test_open_orders_and_cancel(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    ex.client().create_order(SYMBOL, "limit", "buy", 0.01, 2455.0, {"clientOrderId": "resting"})
    ex.clock.set(T12.replace(hour=14))  # two of three parts fill (see test_localexchange)
    [open_order] = adapter.fetch_open_orders()
    assert (open_order.client_order_id, open_order.status, open_order.filled) == ("resting", "open", 0.00666)
    assert [f.price for f in open_order.fills] == [2455.0, 2455.0]
    adapter.cancel_order("resting")
    assert adapter.fetch_order("resting").status == "canceled"
    assert adapter.fetch_open_orders() == []
    with pytest.raises(OrderRejected) as caught:
        adapter.cancel_order("resting")
    assert_clean(caught.value)


def test_fetch_fills_paginates_and_names_client_ids(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    for i in range(3):
        adapter.create_market_order("buy" if i != 1 else "sell", 0.01 if i != 1 else 0.005, f"c-{i}")
        ex.clock.set(T12.replace(hour=13 + i))
    adapter.fills_page_size = 2
    ex_requests = len(ex.requests)
    fills = adapter.fetch_fills()
    assert [f.trade_id for f in fills] == [str(i) for i in range(1, 10)]
    assert [f.client_order_id for f in fills] == ["c-0"] * 3 + ["c-1"] * 3 + ["c-2"] * 3
    assert [f.side for f in fills] == ["buy"] * 3 + ["sell"] * 3 + ["buy"] * 3
    my_trades = [r for r in ex.requests[ex_requests:] if r.path == "/api/v3/myTrades"]
    assert [r.params.get("fromId") for r in my_trades] == ["0", "3", "5", "7", "9"]
    # client ids were learned from the orders already seen: no order lookups
    assert not [r for r in ex.requests[ex_requests:] if r.path == "/api/v3/order"]

    later = adapter.fetch_fills(since=T12.replace(hour=13))
    assert [f.trade_id for f in later] == [str(i) for i in range(4, 10)]
    assert all(f.time >= T12.replace(hour=13) for f in later)


def test_fetch_fills_looks_up_unknown_client_ids_once(ex: LocalExchange) -> None:
    ex.client().create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "placed-elsewhere"})
    adapter = adapter_for(ex)
    assert {f.client_order_id for f in adapter.fetch_fills()} == {"placed-elsewhere"}
    adapter.fetch_fills()
    assert [(r.method, r.path) for r in ex.requests].count(("GET", "/api/v3/order")) == 1


def test_fetch_balance(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.create_market_order("buy", 0.02, "b-1")
    ex.client().create_order(SYMBOL, "limit", "sell", 0.01, 2600.0)
    balance = adapter.fetch_balance()
    expected = ex.balances()
    assert balance["BTC"] == pytest.approx((0.01, 0.01, 0.02))
    assert balance["USDT"] == pytest.approx((expected["USDT"]["free"], 0.0, expected["USDT"]["total"]))


# -- error translation -----------------------------------------------------------------------


def test_insufficient_funds(adapter: ExchangeAdapter) -> None:
    with pytest.raises(InsufficientFunds) as caught:
        adapter.create_market_order("buy", 5.0, "too-big")
    assert isinstance(caught.value, OperationalExchangeError)
    assert_clean(caught.value)


def test_rejected_orders(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    with pytest.raises(OrderRejected, match="NOTIONAL"):
        adapter.create_market_order("buy", 0.001, "too-small")
    with pytest.raises(OrderRejected):
        adapter.create_market_order("buy", 0.000001, "below-the-step")  # ccxt refuses before sending
    with pytest.raises(OrderRejected, match="-1100"):
        adapter.create_market_order("buy", 0.01, "not a valid id")
    ex.client().create_order(SYMBOL, "limit", "buy", 0.01, 2000.0, {"clientOrderId": "open-one"})
    with pytest.raises(OrderRejected, match="Duplicate order sent"):
        adapter.create_market_order("buy", 0.01, "open-one")
    with pytest.raises(ValueError):
        adapter.create_market_order("hold", 0.01, "x")


def test_rate_limit_carries_retry_after(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    ex.inject("/api/v3/ticker/24hr", rate_limited(retry_after=7))
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_price()
    assert caught.value.retry_after == 7.0
    assert not isinstance(caught.value, OrderOutcomeUnknown)
    ex.inject("/api/v3/klines", banned(retry_after=120))
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_candles("1h", 3)
    assert caught.value.retry_after == 120.0
    # A rate-limited order was refused before it was looked at: safe to retry, not "unknown".
    for refusal, wait in ((rate_limited(retry_after=2), 2.0), (banned(retry_after=60), 60.0)):
        ex.inject("POST /api/v3/order", refusal)
        with pytest.raises(OrderRefused) as caught:
            adapter.create_market_order("buy", 0.01, "limited")
        assert not isinstance(caught.value, OrderOutcomeUnknown) and caught.value.retry_after == wait
    assert ex.orders == []
    assert adapter.fetch_price() == 2509.17  # and the next call has no stale retry_after


@pytest.mark.parametrize("fault", [server_error(503), server_error(500), maintenance(retry_after=30),
                                   gateway_timeout(), http_error(502, -9999, "Something new")],
                         ids=["503", "500", "maintenance", "504-html", "502-unknown-code"])
def test_server_side_trouble_is_temporary(ex: LocalExchange, adapter: ExchangeAdapter, fault) -> None:
    adapter.market_rules()
    ex.inject("*", fault)
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_price()
    assert not isinstance(caught.value, OrderOutcomeUnknown)
    assert caught.value.retry_after == fault.retry_after
    assert_clean(caught.value)


def test_server_error_on_an_order_is_an_unknown_outcome(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    ex.inject("POST /api/v3/order", server_error(503))
    with pytest.raises(OrderOutcomeUnknown):
        adapter.create_market_order("buy", 0.01, "maybe")
    assert adapter.fetch_order("maybe") is None  # this time it was not placed: safe to send again
    ex.inject("POST /api/v3/order", maintenance())
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.create_market_order("buy", 0.01, "maybe")
    assert not isinstance(caught.value, OrderOutcomeUnknown)  # maintenance refuses everything


def test_timeout(ex: LocalExchange) -> None:
    adapter = adapter_for(ex, timeout_ms=300)
    adapter.market_rules()
    ex.inject("/api/v3/ticker/24hr", latency(0.7))
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_price()
    assert not isinstance(caught.value, OrderOutcomeUnknown) and caught.value.retry_after is None

    ex.inject("POST /api/v3/order", latency(0.7))
    with pytest.raises(OrderOutcomeUnknown) as caught:
        adapter.create_market_order("buy", 0.01, "slow-order")
    assert_clean(caught.value)
    deadline = time.monotonic() + 3  # the exchange is still working on it
    while not ex.orders and time.monotonic() < deadline:
        time.sleep(0.05)
    found = adapter.fetch_order("slow-order")
    assert found is not None and found.status == "closed" and len(found.fills) == 3


def test_dropped_answer_is_an_unknown_outcome_and_reconciles_by_client_id(
    ex: LocalExchange, adapter: ExchangeAdapter
) -> None:
    adapter.market_rules()
    ex.inject("POST /api/v3/order", drop_after_accept())
    with pytest.raises(OrderOutcomeUnknown) as caught:
        adapter.create_market_order("buy", 0.01, "dropped-1")
    assert isinstance(caught.value, TemporaryExchangeError)
    assert_clean(caught.value)

    found = adapter.fetch_order("dropped-1")
    assert found is not None
    assert (found.client_order_id, found.status, found.filled) == ("dropped-1", "closed", 0.01)
    assert [f.trade_id for f in found.fills] == ["1", "2", "3"]
    assert [o["client_order_id"] for o in ex.orders] == ["dropped-1"]  # exactly once
    assert len(ex.trades) == 3


def test_malformed_answers(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    ex.inject("/api/v3/ticker/24hr", malformed())
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_price()
    assert not isinstance(caught.value, OrderOutcomeUnknown)
    ex.inject("/api/v3/klines", malformed())
    with pytest.raises(TemporaryExchangeError):
        adapter.fetch_candles("1h", 2)
    ex.inject("POST /api/v3/order", malformed())  # placed, then the answer is cut short
    with pytest.raises(OrderOutcomeUnknown):
        adapter.create_market_order("buy", 0.01, "garbled")
    assert adapter.fetch_order("garbled").status == "closed"


def test_clock_skew_is_temporary(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    ex.inject("POST /api/v3/order", clock_skew(-30_000))
    with pytest.raises(OrderRefused, match="InvalidNonce") as caught:
        adapter.create_market_order("buy", 0.01, "early")
    assert not isinstance(caught.value, OrderOutcomeUnknown) and ex.orders == []


def test_order_requests_expire_after_binances_receive_window(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    """An order request older than its recvWindow is refused by the exchange: that bounds how
    long an order we lost track of can still appear (the window, plus the 1 s Binance allows
    a timestamp to run ahead of its clock)."""
    adapter.create_market_order("buy", 0.01, "windowed")
    (sent,) = [r for r in ex.requests if r.method == "POST" and r.path == "/api/v3/order"]
    assert sent.params["recvWindow"] == "5000"
    assert adapter.order_expiry_seconds() == 6.0
    adapter.client.options["recvWindow"] = 2500
    assert adapter.order_expiry_seconds() == 3.5
    kraken = ExchangeAdapter("kraken", "BTC/USD")
    assert kraken.order_expiry_seconds() == 60.0  # no receive window: a generous bound


def test_bad_credentials_and_missing_ones_are_operational(ex: LocalExchange) -> None:
    for credentials in (Credentials(KEY, "wrong-" + SECRET), Credentials("wrong-" + KEY, SECRET)):
        adapter = adapter_for(ex, credentials=credentials)
        with pytest.raises(OperationalExchangeError) as caught:
            adapter.fetch_balance()
        assert_clean(caught.value)
    public = adapter_for(ex, credentials=None)
    assert not public.has_credentials()
    assert public.fetch_price() == 2509.17
    with pytest.raises(OperationalExchangeError, match="no exchange keys"):
        public.fetch_balance()


def test_a_missing_endpoint_is_operational(ex: LocalExchange) -> None:
    adapter = adapter_for(ex, api_url=ex.base_url + "/wrong-prefix")
    with pytest.raises(OperationalExchangeError, match="404"):
        adapter.fetch_price()


def test_unknown_symbol_is_operational(ex: LocalExchange) -> None:
    adapter = ExchangeAdapter("binance", "ETH/BTC", credentials=Credentials(KEY, SECRET), api_url=ex.base_url)
    with pytest.raises(OperationalExchangeError, match="no market ETH/BTC"):
        adapter.market_rules()


# -- secrets ---------------------------------------------------------------------------------


def test_keys_never_reach_exception_text(ex: LocalExchange, adapter: ExchangeAdapter) -> None:
    adapter.market_rules()
    # An exchange that echoes the key back: ccxt puts the body (and the URL) in its message.
    ex.inject("GET /api/v3/account", http_error(400, -1100, f"Illegal characters found in parameter 'apiKey': {KEY}"))
    with pytest.raises(OperationalExchangeError) as caught:
        adapter.fetch_balance()
    assert "***" in str(caught.value) and caught.value.__cause__ is None
    assert_clean(caught.value)
    ex.inject("GET /api/v3/account", http_error(503, -1008, f"busy; secret={SECRET}"))
    with pytest.raises(TemporaryExchangeError) as caught:
        adapter.fetch_balance()
    assert_clean(caught.value)
    # ccxt's timeout text is the signed URL: the signature is masked too.
    slow = adapter_for(ex, timeout_ms=200)
    slow.market_rules()
    ex.inject("GET /api/v3/account", latency(0.5))
    with pytest.raises(TemporaryExchangeError) as caught:
        slow.fetch_balance()
    assert "/api/v3/account?" in str(caught.value) and "signature=***" in str(caught.value)
    assert_clean(caught.value)


def test_keys_never_reach_the_log(ex: LocalExchange, adapter: ExchangeAdapter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter.create_market_order("buy", 0.01, "logged")
    adapter.fetch_balance()
    assert "X-MBX-APIKEY" in caplog.text  # ccxt did log its request headers...
    assert KEY not in caplog.text and SECRET not in caplog.text  # ...masked


def test_credentials_do_not_show(adapter: ExchangeAdapter) -> None:
    credentials = Credentials(KEY, SECRET, "pass-phrase-123")
    for text in (repr(credentials), str(credentials), repr(adapter), f"{credentials}"):
        assert KEY not in text and SECRET not in text and "pass-phrase-123" not in text
    assert repr(credentials) == "Credentials(api_key=***, secret=***, password=***)"


# -- construction ----------------------------------------------------------------------------


def test_from_env_points_at_the_local_exchange(ex: LocalExchange) -> None:
    environ = {"EXCHANGE_API_KEY": KEY, "EXCHANGE_API_SECRET": SECRET, "TRADER_EXCHANGE_URL": ex.base_url + "/"}
    adapter = ExchangeAdapter.from_env("binance", SYMBOL, environ=environ)
    assert adapter.has_credentials()
    assert all(url.startswith(ex.base_url + "/") for url in adapter.client.urls["api"].values() if isinstance(url, str))
    assert adapter.fetch_balance()["USDT"] == (10000.0, 0.0, 10000.0)
    assert {r.path for r in ex.requests} == {"/api/v3/exchangeInfo", "/api/v3/account"}  # spot only, no sapi

    public = ExchangeAdapter.from_env("binance", SYMBOL, environ={"TRADER_EXCHANGE_URL": ex.base_url})
    assert not public.has_credentials()


@pytest.mark.parametrize(("environ", "message"), [
    ({"EXCHANGE_API_KEY": KEY}, "EXCHANGE_API_SECRET is not"),
    ({"EXCHANGE_API_SECRET": SECRET}, "EXCHANGE_API_KEY is not"),
    ({"TRADER_EXCHANGE_URL": "localhost:8765"}, "TRADER_EXCHANGE_URL"),
])
def test_from_env_rejects_half_configurations(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ExchangeAdapter.from_env("binance", SYMBOL, environ=environ)
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)


def test_unknown_exchange_id() -> None:
    with pytest.raises(ConfigError, match="did you mean binance"):
        ExchangeAdapter("binanse", SYMBOL)


def test_every_error_is_an_exchange_error() -> None:
    assert issubclass(OrderOutcomeUnknown, TemporaryExchangeError)
    for cls in (InsufficientFunds, OrderRejected):
        assert issubclass(cls, OperationalExchangeError) and issubclass(cls, ExchangeError)
    assert not issubclass(ccxt.NetworkError, ccxt.ExchangeError)  # why the adapter checks both families
