"""Binance's spot REST API (the part ccxt's binance class uses for one spot market), over the engine.

`BinanceApi.handle` takes a parsed request and returns (status, JSON body); the HTTP plumbing
lives in server.py. Signed endpoints check the API key header, the HMAC-SHA256 signature and
the timestamp window exactly as Binance does, and answer with Binance's own codes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import parse_qsl

from trader.localexchange import apierrors as E
from trader.localexchange.apierrors import ApiError, illegal, mandatory
from trader.localexchange.clock import Clock
from trader.localexchange.faults import OrderFate
from trader.localexchange.fees import FeeMode
from trader.localexchange.market import Candles, SymbolSpec, fmt
from trader.localexchange.apijson import (  # CLIENT_ORDER_ID: also public here
    CLIENT_ORDER_ID,
    header_value,
    integer_param,
    order_fields,
    order_json,
    trade_json,
    without_signature,
)
from trader.localexchange.apilists import OrderListApi
from trader.localexchange.matching import Engine, Order, Trade

log = logging.getLogger(__name__)

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_DAY_MS = 86_400_000
_MAX_RECV_WINDOW = 60_000


@dataclass
class Request:
    method: str
    path: str
    query: str = ""  # raw, as signed
    body: str = ""  # raw form body, as signed
    headers: Mapping[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """Query and body parameters together (Binance reads both)."""
        merged = dict(parse_qsl(self.query, keep_blank_values=True))
        merged.update(parse_qsl(self.body, keep_blank_values=True))
        return merged


@dataclass(frozen=True)
class _Route:
    handler: Callable[[dict[str, str]], object]
    signed: bool
    weight: int = 1


class BinanceApi(OrderListApi):
    """Routes, authentication and JSON shapes (OCO lists: apilists). Engine state is guarded by `lock`."""

    def __init__(
        self,
        engine: Engine,
        *,
        api_key: str,
        secret: str,
        lock: threading.RLock,
    ) -> None:
        self.engine = engine
        self.spec: SymbolSpec = engine.spec
        self.candles: Candles = engine.candles
        self.clock: Clock = engine.clock
        self.api_key = api_key
        self.secret = secret
        self.lock = lock
        self.routes: dict[tuple[str, str], _Route] = {
            ("GET", "/api/v3/ping"): _Route(lambda p: {}, False),
            ("GET", "/api/v3/time"): _Route(lambda p: {"serverTime": self.clock.now_ms()}, False),
            ("GET", "/api/v3/exchangeInfo"): _Route(self._exchange_info, False, 20),
            ("GET", "/api/v3/klines"): _Route(self._klines, False, 2),
            ("GET", "/api/v3/ticker/price"): _Route(self._ticker_price, False, 2),
            ("GET", "/api/v3/ticker/24hr"): _Route(self._ticker_24hr, False, 2),
            ("GET", "/api/v3/ticker/bookTicker"): _Route(self._book_ticker, False, 2),
            ("GET", "/api/v3/depth"): _Route(self._depth, False, 5),
            ("POST", "/api/v3/order"): _Route(self._new_order, True, 1),
            ("GET", "/api/v3/order"): _Route(self._get_order, True, 4),
            ("DELETE", "/api/v3/order"): _Route(self._cancel_order, True, 1),
            ("GET", "/api/v3/openOrders"): _Route(self._open_orders, True, 6),
            ("DELETE", "/api/v3/openOrders"): _Route(self._cancel_open_orders, True, 1),
            ("GET", "/api/v3/allOrders"): _Route(self._all_orders, True, 20),
            ("GET", "/api/v3/myTrades"): _Route(self._my_trades, True, 20),
            ("GET", "/api/v3/account"): _Route(self._account, True, 20),
            **self.list_routes(_Route),
        }

    def route(self, method: str, path: str) -> _Route | None:
        return self.routes.get((method, path))

    def handle(self, request: Request, skew_ms: int = 0, fate: OrderFate | None = None) -> tuple[int, object]:
        """(HTTP status, JSON-able body) for a request to a known route; `fate`: what becomes
        of the order it places, if it places one (the fault matrix)."""
        route = self.route(request.method, request.path)
        assert route is not None, "the server answers unknown routes itself"
        try:
            if route.signed:
                self._authenticate(request, skew_ms)
            params = request.params()
            with self.lock:
                self.engine.sync()
                if route.handler in (self._new_order, self._new_oco):  # the fault matrix's fate
                    return 200, route.handler(params, fate)
                return 200, route.handler(params)
        except ApiError as exc:
            return exc.status, exc.body()
        except Exception:  # a bug here must not look like a network failure to the client
            log.exception("local exchange: %s %s failed", request.method, request.path)
            return 500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}

    # -- authentication --------------------------------------------------------------------

    def _authenticate(self, request: Request, skew_ms: int) -> None:
        key = header_value(request.headers, "X-MBX-APIKEY")
        if not key:
            raise ApiError(*E.API_KEY_FORMAT, status=401)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(*E.BAD_API_KEY, status=401)
        params = request.params()
        timestamp = integer_param(params, "timestamp", required=True)
        signature = params.get("signature") or ""
        if not signature:
            raise mandatory("signature")
        recv_window = integer_param(params, "recvWindow", default=5000)
        if not 0 < recv_window <= _MAX_RECV_WINDOW:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        # Binance signs the query string followed directly by the body, without the signature.
        payload = without_signature(request.query) + without_signature(request.body)
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ApiError(*E.BAD_SIGNATURE)
        server = self.clock.wall_ms(skew_ms)
        if timestamp >= server + 1000:
            raise ApiError(*E.TIMESTAMP_AHEAD)
        if server - timestamp > recv_window:
            raise ApiError(*E.TIMESTAMP_OUTSIDE)

    # -- public ----------------------------------------------------------------------------

    def _exchange_info(self, p: dict[str, str]) -> dict:
        if "symbol" in p:
            self._symbol(p, required=True)
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self.spec.exchange_info_entry()] + (
                [SymbolSpec.parse(f"{self.engine.fees.asset}/{self.spec.quote}").exchange_info_entry()]
                if self._fee_asset_market() else []),
        }

    def _klines(self, p: dict[str, str]) -> list:
        self._symbol(p, required=True)
        interval = p.get("interval") or ""
        if not interval:
            raise mandatory("interval")
        if interval != self.candles.interval:  # the data has one timeframe; others are not made up
            raise ApiError(-1120, "Invalid interval.")
        limit = integer_param(p, "limit", default=500)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Invalid data sent for a parameter.")
        start = integer_param(p, "startTime", default=None)
        end = integer_param(p, "endTime", default=None)
        return self.candles.klines(self.clock.now_ms(), start, end, limit)

    def _fee_asset_market(self) -> str | None:
        """The third currency's market (BNBUSDT), listed for its price when fees are paid in it."""
        fees = self.engine.fees
        return f"{fees.asset}{self.spec.quote}" if fees.mode == FeeMode.THIRD else None

    def _fee_asset_ticker(self, p: dict[str, str]) -> dict | None:
        if p.get("symbol") is None or p.get("symbol") != self._fee_asset_market():
            return None
        price = fmt(self.engine.fees.asset_price)
        return {"symbol": p["symbol"], "price": price, "lastPrice": price, "openPrice": price, "highPrice": price,
                "lowPrice": price, "bidPrice": price, "askPrice": price, "volume": "0", "quoteVolume": "0",
                "openTime": self.clock.now_ms() - _DAY_MS, "closeTime": self.clock.now_ms(), "count": 0}

    def _ticker_price(self, p: dict[str, str]) -> object:
        if (fee_ticker := self._fee_asset_ticker(p)) is not None:
            return {"symbol": fee_ticker["symbol"], "price": fee_ticker["price"]}
        body = {"symbol": self.spec.id, "price": fmt(self._price())}
        return body if self._symbol(p) else [body]

    def _ticker_24hr(self, p: dict[str, str]) -> object:
        if (fee_ticker := self._fee_asset_ticker(p)) is not None:
            return fee_ticker
        now = self.clock.now_ms()
        window, open_time = self.candles.window_24h(now)
        last = self._price()
        first = self.candles.price(window[0][0]) if window else last
        high = max((self.candles.price(c[1]) for c in window), default=last)
        low = min((self.candles.price(c[2]) for c in window), default=last)
        volume = sum(c[4] for c in window)
        quote_volume = sum(c[4] * (c[0] + c[3]) / 2 for c in window)
        change = last - first
        body = {
            "symbol": self.spec.id,
            "priceChange": fmt(change),
            "priceChangePercent": f"{(change / first * 100 if first else 0):.3f}",
            "weightedAvgPrice": f"{(quote_volume / volume if volume else float(last)):.8f}",
            "prevClosePrice": fmt(first),
            "lastPrice": fmt(last),
            "lastQty": "0.00000000",
            "bidPrice": fmt(last), "bidQty": "1000.00000000",
            "askPrice": fmt(last), "askQty": "1000.00000000",
            "openPrice": fmt(first), "highPrice": fmt(high), "lowPrice": fmt(low),
            "volume": f"{volume:.8f}", "quoteVolume": f"{quote_volume:.8f}",
            "openTime": open_time, "closeTime": now,
            "firstId": -1, "lastId": -1, "count": 0,
        }
        return body if self._symbol(p) else [body]

    def _book_ticker(self, p: dict[str, str]) -> object:
        # No order book: the whole book sits at the current price, which is where orders fill.
        price = fmt(self._price())
        body = {"symbol": self.spec.id, "bidPrice": price, "bidQty": "1000.00000000",
                "askPrice": price, "askQty": "1000.00000000"}
        return body if self._symbol(p) else [body]

    def _depth(self, p: dict[str, str]) -> dict:
        self._symbol(p, required=True)
        price = fmt(self._price())
        return {"lastUpdateId": self.clock.now_ms(), "bids": [[price, "1000.00000000"]], "asks": [[price, "1000.00000000"]]}

    # -- orders ----------------------------------------------------------------------------

    def _new_order(self, p: dict[str, str], fate: OrderFate | None = None) -> dict:
        self._symbol(p, required=True)
        side = p.get("side") or ""
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(-1117, "Invalid side.")
        type_ = p.get("type") or ""
        if not type_:
            raise mandatory("type")
        if type_ not in self.spec.order_types:
            raise ApiError(-1116, "Invalid orderType.")
        quantity = self._decimal(p, "quantity")
        price = self._decimal(p, "price")
        quote_qty = self._decimal(p, "quoteOrderQty")
        stop_price = self._decimal(p, "stopPrice")
        tif = p.get("timeInForce") or None
        if type_ == "STOP_LOSS":
            for name, value in (("quantity", quantity), ("stopPrice", stop_price)):
                if value is None:
                    raise mandatory(name)
            for name, value in (("price", price), ("timeInForce", tif), ("quoteOrderQty", quote_qty)):
                if value is not None:
                    raise ApiError(-1106, f"Parameter '{name}' sent when not required.")
        elif type_ in ("LIMIT", "LIMIT_MAKER"):  # a LIMIT_MAKER takes no timeInForce: it only rests
            for name, value in ((("timeInForce", tif),) if type_ == "LIMIT" else ()) + (("quantity", quantity), ("price", price)):
                if value is None:
                    raise mandatory(name)
            if tif not in ("GTC", "IOC", "FOK") and (type_ == "LIMIT" or tif is not None):
                raise ApiError(-1115, "Invalid timeInForce.")
            if quote_qty is not None:
                raise ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        else:
            for name, value in (("price", price), ("timeInForce", tif)):
                if value is not None:
                    raise ApiError(-1106, f"Parameter '{name}' sent when not required.")
            if quantity is None and quote_qty is None:
                raise ApiError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if quantity is not None and quote_qty is not None:
                raise ApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        client_id = p.get("newClientOrderId")
        if client_id is None:
            client_id = f"local-{self.engine.next_order_id}"  # Binance makes one up; ours is deterministic
        if not CLIENT_ORDER_ID.match(client_id):
            raise illegal("newClientOrderId", CLIENT_ORDER_ID.pattern)
        resp_type = p.get("newOrderRespType") or "FULL"
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise ApiError(-1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.")

        order, fills = self.engine.place(
            side=side, type=type_, quantity=quantity, quote_order_qty=quote_qty, price=price,
            time_in_force=tif, client_order_id=client_id, fate=fate, stop_price=stop_price,
        )
        transact = self.clock.now_ms()
        ack = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
               "clientOrderId": order.client_order_id, "transactTime": transact}
        if resp_type == "ACK":
            return ack
        body = {**ack, **order_fields(order), "workingTime": order.time, "selfTradePreventionMode": "EXPIRE_MAKER"}
        if resp_type == "FULL":
            body["fills"] = [
                {"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.commission),
                 "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                for t in fills
            ]
        return body

    def _lookup(self, p: dict[str, str]) -> Order | None:
        self._symbol(p, required=True)
        order_id = integer_param(p, "orderId", default=None)
        client_id = p.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return self.engine.find(order_id=order_id, client_order_id=client_id)

    def _get_order(self, p: dict[str, str]) -> dict:
        order = self._lookup(p)
        if order is None:
            raise ApiError(*E.ORDER_NOT_FOUND)
        return order_json(order)

    def _cancel_order(self, p: dict[str, str]) -> dict:
        order = self._lookup(p)
        if order is None or not order.is_open:
            raise ApiError(*E.UNKNOWN_ORDER)
        return self._cancel_json(order, self.engine.cancel(order))

    def _cancel_json(self, order: Order, cancel_id: str) -> dict:
        return {
            "symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
            "orderListId": order.order_list_id, "clientOrderId": cancel_id, "transactTime": self.clock.now_ms(),
            **order_fields(order), "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def _open_orders(self, p: dict[str, str]) -> list:
        self._symbol(p)
        return [order_json(o) for o in self.engine.orders if o.is_open]

    def _cancel_open_orders(self, p: dict[str, str]) -> list:
        self._symbol(p, required=True)
        open_orders = [o for o in self.engine.orders if o.is_open]
        if not open_orders:
            raise ApiError(*E.UNKNOWN_ORDER)
        return [self._cancel_json(o, self.engine.cancel(o)) for o in open_orders]

    def _all_orders(self, p: dict[str, str]) -> list:
        self._symbol(p, required=True)
        limit = self._limit(p)
        orders = self.engine.orders
        order_id = integer_param(p, "orderId", default=None)
        if order_id is not None:
            return [order_json(o) for o in orders if o.order_id >= order_id][:limit]
        return [order_json(o) for o in self._by_time(orders, p, limit, lambda o: o.time)]

    def _my_trades(self, p: dict[str, str]) -> list:
        self._symbol(p, required=True)
        limit = self._limit(p)
        trades: list[Trade] = self.engine.trades
        order_id = integer_param(p, "orderId", default=None)
        from_id = integer_param(p, "fromId", default=None)
        timed = "startTime" in p or "endTime" in p
        if (from_id is not None or order_id is not None) and timed:
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if order_id is not None:
            trades = [t for t in trades if t.order_id == order_id]
        if from_id is not None:
            selected = [t for t in trades if t.trade_id >= from_id][:limit]
        elif timed:
            selected = self._by_time(trades, p, limit, lambda t: t.time)
        else:
            selected = trades[-limit:]
        return [trade_json(t, self.engine.find(order_id=t.order_id).order_list_id) for t in selected]

    def _account(self, p: dict[str, str]) -> dict:
        fee = self.engine.fee_rate
        omit_zero = (p.get("omitZeroBalances") or "").lower() == "true"
        balances = [
            {"asset": asset, "free": fmt(free), "locked": fmt(locked)}
            for asset, (free, locked) in sorted(self.engine.wallet.items())
            if not (omit_zero and free == 0 and locked == 0)
        ]
        return {
            "makerCommission": int(fee * 10000), "takerCommission": int(fee * 10000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(fee), "taker": fmt(fee), "buyer": fmt(0), "seller": fmt(0)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.clock.now_ms(), "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"], "uid": 1,
        }

    # -- helpers ---------------------------------------------------------------------------

    def _price(self) -> Decimal:
        price = self.candles.current_price(self.clock.now_ms())
        if price is None:
            raise ApiError(*E.MARKET_CLOSED)
        return price

    def _symbol(self, p: dict[str, str], required: bool = False) -> bool:
        """Whether a symbol was given (it must be ours)."""
        symbol = p.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return False
        if symbol != self.spec.id:
            raise ApiError(*E.INVALID_SYMBOL)
        return True

    def _decimal(self, p: dict[str, str], name: str) -> Decimal | None:
        text = p.get(name)
        if text is None or text == "":
            return None
        if not _DECIMAL.match(text):
            raise illegal(name, _DECIMAL.pattern)
        value = Decimal(text)
        if -value.normalize().as_tuple().exponent > self.spec.precision:
            raise ApiError(-1111, "Precision is over the maximum defined for this asset.")
        return value

    def _limit(self, p: dict[str, str]) -> int:
        limit = integer_param(p, "limit", default=500)
        if not 1 <= limit <= 1000:
            raise ApiError(-1130, "Invalid data sent for a parameter.")
        return limit

    @staticmethod
    def _by_time(items: list, p: dict[str, str], limit: int, time_of: Callable[[object], int]) -> list:
        """Binance's time windows: forward from startTime, else the newest up to endTime."""
        start = integer_param(p, "startTime", default=None)
        end = integer_param(p, "endTime", default=None)
        if start is not None and end is not None and end - start > _DAY_MS:
            raise ApiError(-1127, "More than 24 hours between startTime and endTime.")
        chosen = [x for x in items if (start is None or time_of(x) >= start) and (end is None or time_of(x) <= end)]
        return chosen[:limit] if start is not None else chosen[-limit:]
