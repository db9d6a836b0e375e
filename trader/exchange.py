"""Our adapter over ccxt: one exchange, one symbol. Every call goes through
`ExchangeAdapter._call`, the ONLY place ccxt errors are translated into trader.errors classes
(by trader.exchange_errors, whose docstring says what becomes what), so every
TemporaryExchangeError raised here carries `retry_after` and a failed order placement says
whether the order may exist (OrderOutcomeUnknown) or was refused before it was looked at
(OrderRefused).

No message, repr or log line carries the API key, secret or password: exception text is
scrubbed (ccxt's own text can hold URLs and bodies), exceptions are raised `from None` so
ccxt's originals are not printed with them, and ccxt's debug log goes through a scrubbing logger
(both in trader.exchange_client, which builds the ccxt client).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import pandas as pd

from trader.domain import FillReport, Side
from trader.errors import ConfigError, OperationalExchangeError, OrderOutcomeUnknown, TemporaryExchangeError
from trader.exchange_client import (  # Credentials, HttpStatus, point_api_at: also public here
    BINANCE_IDS,
    BINANCE_RECV_WINDOW_MS,
    Credentials,
    HttpStatus,
    Scrubber,
    ScrubbingLogger,
    build_client,
    point_api_at,
    retry_after,
)
from trader.exchange_errors import translate, with_retry_after
from trader.exchange_orders import AccountOrders
from trader.ohlcv import COLUMNS

log = logging.getLogger(__name__)
T = TypeVar("T")

_NO_REQUEST = object()  # marks "no HTTP answer yet" in ccxt's last_json_response
_ORDER_STATUSES = {"open", "closed", "canceled", "rejected", "expired"}


# -- values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketRules:
    symbol: str
    base: str
    quote: str
    amount_step: float
    price_step: float
    min_amount: float
    min_notional: float


@dataclass(frozen=True)
class ExchangeOrder:
    order_id: str
    client_order_id: str | None
    status: str  # 'open' | 'closed' | 'canceled' | 'rejected' | 'expired'
    side: str
    amount: float
    filled: float
    average: float | None
    fills: tuple[FillReport, ...]


# -- the adapter ----------------------------------------------------------------------------


class ExchangeAdapter(AccountOrders):
    """One ccxt exchange and one symbol, with errors translated and secrets kept out of text."""

    fills_page_size = 1000  # Binance's maximum for myTrades; tests lower it to exercise paging

    def __init__(
        self,
        exchange_id: str,
        symbol: str,
        *,
        credentials: Credentials | None = None,
        api_url: str | None = None,
        client: Any = None,
        timeout_ms: int = 10000,
    ) -> None:
        self.exchange_id = exchange_id
        self.symbol = symbol
        self._credentials = credentials
        if client is None:
            client = build_client(exchange_id, credentials, timeout_ms, local=api_url is not None)
        if api_url is not None:
            point_api_at(client, api_url)
        secrets = list(credentials.values()) if credentials else []
        secrets += [getattr(client, name, None) or "" for name in ("apiKey", "secret", "password")]
        self._scrub = Scrubber(secrets)
        self.client = client
        # ccxt logs request headers (the API key among them) at debug level.
        client.logger = ScrubbingLogger(logging.getLogger("trader.exchange.ccxt"), self._scrub)
        client.enableLastResponseHeaders = True  # for Retry-After
        client.enableLastJsonResponse = True  # to tell an unreadable body from a bug
        self._status = HttpStatus(client)
        self._rules: MarketRules | None = None
        self._client_ids: dict[str, str | None] = {}  # order id -> client order id (never changes)
        self._fee_prices: dict[str, tuple[float, float]] = {}  # third fee currency -> (monotonic time, price)

    def order_expiry_seconds(self) -> float:
        """How long after it was signed an order request may still be accepted. Binance refuses
        a request older than its recvWindow, or stamped more than 1 s ahead of its clock; so
        an order it does not know this long after we sent it will never exist. Exchanges
        without such a window get a generous bound on how late a request can arrive."""
        if self.exchange_id in BINANCE_IDS:
            window_ms = self.client.options.get("recvWindow") or BINANCE_RECV_WINDOW_MS
            return float(window_ms) / 1000.0 + 1.0
        return 60.0

    def __repr__(self) -> str:
        return f"ExchangeAdapter({self.exchange_id!r}, {self.symbol!r}, credentials={self._credentials!r})"

    @classmethod
    def from_env(cls, exchange_id: str, symbol: str, environ: Mapping[str, str] = os.environ) -> ExchangeAdapter:
        """Keys from EXCHANGE_API_KEY / EXCHANGE_API_SECRET (/ EXCHANGE_API_PASSWORD); without
        them the adapter serves public data only. TRADER_EXCHANGE_URL, when set, points every API
        root at another base URL (the local exchange)."""
        key = (environ.get("EXCHANGE_API_KEY") or "").strip()
        secret = (environ.get("EXCHANGE_API_SECRET") or "").strip()
        password = (environ.get("EXCHANGE_API_PASSWORD") or "").strip() or None
        if bool(key) != bool(secret):
            have, lack = ("EXCHANGE_API_KEY", "EXCHANGE_API_SECRET") if key else ("EXCHANGE_API_SECRET", "EXCHANGE_API_KEY")
            raise ConfigError(f"{have} is set but {lack} is not: set both, or neither for public data only")
        credentials = Credentials(key, secret, password) if key else None
        url = (environ.get("TRADER_EXCHANGE_URL") or "").strip() or None
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"TRADER_EXCHANGE_URL {url!r}: expected a base URL like http://127.0.0.1:8765")
        return cls(exchange_id, symbol, credentials=credentials, api_url=url)

    def has_credentials(self) -> bool:
        return self._credentials is not None or bool(getattr(self.client, "apiKey", None))

    # -- market ----------------------------------------------------------------------------

    def market_rules(self) -> MarketRules:
        """The symbol's steps and minimums; markets are loaded once."""
        if self._rules is None:
            self._call("load markets", self.client.load_markets)
            market = (self.client.markets or {}).get(self.symbol)
            if market is None:
                raise OperationalExchangeError(f"{self.exchange_id} has no market {self.symbol}")
            precision, limits = market.get("precision") or {}, market.get("limits") or {}
            amount_step = self._step(precision.get("amount"), "amount")
            price_step = self._step(precision.get("price"), "price")
            self._rules = MarketRules(
                symbol=self.symbol,
                base=market["base"],
                quote=market["quote"],
                amount_step=amount_step,
                price_step=price_step,
                min_amount=float((limits.get("amount") or {}).get("min") or amount_step),
                min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
            )
        return self._rules

    def round_amount(self, amount: float) -> float:
        """Floor to the amount step (towards zero: never more than we asked for)."""
        if not math.isfinite(amount):
            raise ValueError(f"amount {amount!r} is not a finite number")
        step = Decimal(repr(self.market_rules().amount_step))
        # repr() gives the shortest exact decimal, so 0.3 is 0.3 and not 0.299999...
        return float((Decimal(repr(float(amount))) / step).to_integral_value(ROUND_DOWN) * step)

    def fetch_candles(self, timeframe: str, limit: int) -> pd.DataFrame:
        """The newest `limit` candles (load_ohlcv's frame shape), the one in progress last."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.market_rules()
        rows = self._call("fetch candles", lambda: self.client.fetch_ohlcv(self.symbol, timeframe, limit=limit))
        try:
            frame = pd.DataFrame([list(r[:6]) for r in rows], columns=["timestamp", *COLUMNS])
            index = pd.to_datetime(frame.pop("timestamp").astype("int64"), unit="ms", utc=True)
            frame = frame.astype("float64").fillna({"volume": 0.0})
        except (TypeError, ValueError, IndexError, KeyError):
            raise self._temporary(f"fetch candles: unexpected candle rows {self._scrub(str(rows)[:200])}") from None
        frame.index = pd.DatetimeIndex(index).as_unit("ns").rename("timestamp")
        return frame

    def fetch_price(self) -> float:
        self.market_rules()
        ticker = self._call("fetch price", lambda: self.client.fetch_ticker(self.symbol))
        price = ticker.get("last") if isinstance(ticker, dict) else None
        if price is None and isinstance(ticker, dict):
            price = ticker.get("close")
        if not isinstance(price, (int, float)) or not price > 0:
            raise self._temporary(f"fetch price: the ticker has no price: {self._scrub(str(ticker)[:200])}")
        return float(price)

    # -- orders ----------------------------------------------------------------------------

    def create_market_order(self, side: str, amount: float, client_order_id: str) -> ExchangeOrder:
        """Send a market order; raises OrderOutcomeUnknown when it may or may not exist."""
        side = _side(side)
        self._require_credentials()
        self.market_rules()  # so the order request is the only request made below
        order = self._call(
            "create order",
            lambda: self.client.create_order(self.symbol, "market", side, amount, None, {"clientOrderId": client_order_id}),
            on_order=True,
            placing=True,
        )
        if not isinstance(order, dict) or not order.get("id"):
            raise self._unknown(f"create order: no order id in the answer: {self._scrub(str(order)[:200])}")
        return self._order(order, client_order_id)

    def fetch_order(self, client_order_id: str) -> ExchangeOrder | None:
        """The order with this client id, with its fills; None when the exchange does not know it."""
        self._require_credentials()
        self.market_rules()
        order = self._call(
            "fetch order",
            lambda: self.client.fetch_order(None, self.symbol, {"clientOrderId": client_order_id}),
            on_order=True,
            missing_ok=True,
        )
        return None if order is None else self._order(order, client_order_id)

    def fetch_open_orders(self) -> list[ExchangeOrder]:
        self._require_credentials()
        self.market_rules()
        orders = self._call("fetch open orders", lambda: self.client.fetch_open_orders(self.symbol), on_order=True)
        return [self._order(o, o.get("clientOrderId")) for o in orders]

    def cancel_order(self, client_order_id: str) -> None:
        """Cancel an open order. OrderRejected when it is unknown or no longer open (fetch it to see why)."""
        self._require_credentials()
        self.market_rules()
        self._call(
            "cancel order",
            lambda: self.client.cancel_order(None, self.symbol, {"clientOrderId": client_order_id}),
            on_order=True,
        )

    def fetch_fills(self, since: datetime | None = None) -> list[FillReport]:
        """Every fill of the symbol at or after `since` (all of them without it), oldest first.

        Binance pages by trade id: the first page by time (or from trade id 0, since without
        either it answers only the newest trades), then from the last id + 1 until a short
        page. Other exchanges page by time, moving `since` to the last fill seen.
        """
        self._require_credentials()
        self.market_rules()
        page = self.fills_page_size
        since_ms = _to_ms(since) if since is not None else None
        by_id_paging = self.exchange_id in BINANCE_IDS
        params: dict[str, Any] = {"fromId": 0} if by_id_paging and since_ms is None else {}
        by_id: dict[str, dict] = {}
        while True:
            trades = self._call(
                "fetch fills", lambda: self.client.fetch_my_trades(self.symbol, since_ms, page, dict(params))
            )
            new = [t for t in trades if str(t["id"]) not in by_id]
            by_id.update((str(t["id"]), t) for t in trades)
            if len(trades) < page or not new:
                break
            if by_id_paging:  # ccxt sorts a page by time, so the last row is not always the last id
                since_ms, params = None, {"fromId": max(int(t["id"]) for t in trades) + 1}
            else:
                since_ms = max(int(t["timestamp"]) for t in trades)
        trades = sorted(by_id.values(), key=lambda t: (int(t["timestamp"] or 0), _id_key(str(t["id"]))))
        return [self._fill(t, self._client_id_of(str(t["order"]))) for t in trades]

    def fetch_balance(self) -> dict[str, tuple[float, float, float]]:
        """currency -> (free, used, total)."""
        self._require_credentials()
        balance = self._call("fetch balance", self.client.fetch_balance)
        totals = balance.get("total") or {}
        free, used = balance.get("free") or {}, balance.get("used") or {}
        return {
            currency: (float(free.get(currency) or 0.0), float(used.get(currency) or 0.0), float(total or 0.0))
            for currency, total in totals.items()
        }

    # -- conversions -----------------------------------------------------------------------

    def _order(self, order: dict, client_order_id: str | None) -> ExchangeOrder:
        order_id = str(order["id"])
        client_id = order.get("clientOrderId") or client_order_id
        self._client_ids[order_id] = client_id
        side = order.get("side") or ""
        filled = float(order.get("filled") or 0.0)
        when = order.get("lastTradeTimestamp") or order.get("timestamp")
        fills = [self._fill(t, client_id, order_id=order_id, side=side, when=when) for t in order.get("trades") or []]
        if filled > 0 and sum(f.amount for f in fills) < filled * (1 - 1e-9):
            # Fetched orders carry no fills: ask for the order's trades.
            trades = self._call(
                "fetch order fills",
                lambda: self.client.fetch_my_trades(self.symbol, None, 1000, {"orderId": order_id}),
            )
            fills = [self._fill(t, client_id, order_id=order_id, side=side, when=when) for t in trades]
        status = order.get("status") or "open"
        return ExchangeOrder(
            order_id=order_id,
            client_order_id=client_id,
            status=status if status in _ORDER_STATUSES else "open",  # 'canceling' is still open
            side=side,
            amount=float(order.get("amount") or 0.0),
            filled=filled,
            average=float(order["average"]) if order.get("average") is not None else None,
            fills=tuple(sorted(fills, key=lambda f: (f.time, _id_key(f.trade_id)))),
        )

    def _fill(
        self,
        trade: dict,
        client_order_id: str | None,
        *,
        order_id: str | None = None,
        side: str | None = None,
        when: int | None = None,
    ) -> FillReport:
        # Fills inside an order answer lack side, order and time: the order supplies them.
        fee = trade.get("fee") or {}
        stamp = trade.get("timestamp") or when
        if stamp is None:
            raise self._temporary("exchange fill without a time")
        if (trade.get("side") or side) not in ("buy", "sell"):
            raise self._temporary("exchange fill without a side")
        rules = self._rules
        currency = fee.get("currency") or (rules.quote if rules else "")
        cost = float(fee.get("cost") or 0.0)
        return FillReport(
            trade_id=str(trade["id"]),
            exchange_order_id=str(trade.get("order") or order_id),
            client_order_id=client_order_id,
            side=Side(trade.get("side") or side),
            amount=float(trade["amount"]),
            price=float(trade["price"]),
            fee=cost,
            fee_currency=currency,
            time=datetime.fromtimestamp(int(stamp) / 1000, tz=timezone.utc),
            fee_quote=self._fee_value(cost, currency),
        )

    def _client_id_of(self, order_id: str) -> str | None:
        """myTrades does not name client ids: look each order up once (ids never change)."""
        if order_id not in self._client_ids:
            order = self._call(
                "fetch order", lambda: self.client.fetch_order(order_id, self.symbol), on_order=True, missing_ok=True
            )
            self._client_ids[order_id] = order.get("clientOrderId") if order else None
        return self._client_ids[order_id]

    def _step(self, precision: Any, what: str) -> float:
        if precision is None:
            raise OperationalExchangeError(f"{self.exchange_id} {self.symbol}: the market has no {what} precision")
        mode = getattr(self.client, "precisionMode", ccxt.TICK_SIZE)
        if mode == ccxt.TICK_SIZE:
            return float(precision)
        if mode == ccxt.DECIMAL_PLACES:
            return float(Decimal(1).scaleb(-int(precision)))
        raise OperationalExchangeError(f"{self.exchange_id}: significant-digit precision is not supported")

    # -- calling ccxt ----------------------------------------------------------------------

    def _require_credentials(self) -> None:
        if not self.has_credentials():
            raise OperationalExchangeError(
                f"{self.exchange_id}: no exchange keys; set EXCHANGE_API_KEY and EXCHANGE_API_SECRET"
            )

    def _call(
        self,
        action: str,
        fn: Callable[[], T],
        *,
        on_order: bool = False,
        placing: bool = False,
        missing_ok: bool = False,
    ) -> T:
        client = self.client
        client.last_response_headers = None
        client.last_json_response = _NO_REQUEST
        self._status.last = None
        try:
            result = fn()
        except ccxt.BaseError as exc:
            if missing_ok and isinstance(exc, ccxt.OrderNotFound):
                return None  # type: ignore[return-value]
            raise translate(action, exc, status=self._status, wait=self._retry_after(), scrub=self._scrub,
                            on_order=on_order, placing=placing) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            # ccxt parsing an answer that was not JSON; anything else is our bug and propagates.
            if client.last_json_response is not None:
                raise
            raise self._bad_body(action, placing) from None
        if client.last_json_response is None:  # answered, but the body was not JSON
            raise self._bad_body(action, placing)
        return result

    def _bad_body(self, action: str, placing: bool) -> TemporaryExchangeError:
        text = f"{action}: the exchange answered with a body that is not JSON"
        return self._unknown(text) if placing else self._temporary(text)

    def _temporary(self, text: str) -> TemporaryExchangeError:
        return with_retry_after(TemporaryExchangeError(self._scrub(text)), self._retry_after())

    def _unknown(self, text: str) -> OrderOutcomeUnknown:
        return with_retry_after(OrderOutcomeUnknown(self._scrub(text)), self._retry_after())

    def _retry_after(self) -> float | None:
        return retry_after(self.client)


# -- helpers --------------------------------------------------------------------------------


def _side(side: str) -> str:
    lowered = str(side).lower()
    if lowered not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
    return lowered


def _id_key(trade_id: str) -> tuple[int, int, str]:
    """Numeric ids in number order ("9" before "10"), others after them as text."""
    return (0, int(trade_id), "") if trade_id.isdigit() else (1, 0, trade_id)


def _to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)
