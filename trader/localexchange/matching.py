"""Orders, trades and balances of the local exchange: one account, one symbol, Decimal maths.

Matching model (deterministic, no order book):

* MARKET orders, and LIMIT orders that are marketable when placed, fill at once at the
  current price (the open of the candle in progress) as `partial_fills` taker trades of
  near-equal size.
* Other LIMIT orders rest with their cost locked, and fill at their limit price as maker
  trades: one part per candle whose revealed range reaches the price (low <= price for a
  buy, high >= price for a sell). A candle counts only if it opened at or after the order
  (the part of a candle before the order is unknowable); the candle in progress counts by
  its open alone, so a price that gaps through the limit still fills.
* STOP_LOSS orders (a stop-market, Binance's spot type) rest with their quantity locked and
  trigger on the first candle (from the one they were placed in) whose revealed range reaches
  the stop price (low <= stop for a sell, high >= stop for a buy); they fill as taker trades
  at the stop price, or at the candle's open when it gapped through the stop. One placed with
  an `OrderFate` fills only `parts` parts when it triggers and the rest EXPIREs (a triggered
  market order that ran out of liquidity).
* LIMIT_MAKER orders rest like LIMIT ones and are refused when they would fill at once.
  An OCO order list (trader.localexchange.orderlists) pairs one with a STOP_LOSS leg.
* A MARKET order placed with an `OrderFate` (the fault matrix) is accepted and then does what
  real exchanges sometimes do: stays open (the rest fills one part per later candle, at its
  open), expires after some parts filled, or is rejected after it was accepted.
* The fee is fee_rate * notional, charged as the fee mode says (trader.localexchange.fees):
  in the quote currency by default (a buy pays notional + fee, a sell receives notional -
  fee; a resting buy locks notional + fee), from the base asset a buy receives (Binance's
  default), or in a third currency like BNB.
* Order ids and trade ids count from 1.

Callers hold the exchange's lock; nothing here is thread-safe on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from trader.localexchange.apierrors import (
    DUPLICATE_ORDER,
    INSUFFICIENT_BALANCE,
    MARKET_CLOSED,
    ApiError,
    filter_failure,
)
from trader.localexchange.clock import Clock
from trader.localexchange.faults import Fate, OrderFate
from trader.localexchange.fees import FeeMode, FeeModel
from trader.localexchange.market import Candles, SymbolSpec, dec
from trader.localexchange.orderlists import OrderList, OrderLists

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str  # exchange id, "BTCUSDT"
    side: str  # "BUY" | "SELL"
    type: str  # "MARKET" | "LIMIT"
    time_in_force: str | None
    price: Decimal  # limit price; 0 for MARKET, as Binance shows it
    orig_qty: Decimal
    time: int
    executed_qty: Decimal = Decimal(0)
    cumulative_quote_qty: Decimal = Decimal(0)
    status: str = "NEW"
    update_time: int = 0
    locked: Decimal = Decimal(0)  # what this order still holds locked (quote for buys, base for sells)
    parts: list[Decimal] = field(default_factory=list)  # quantities still to fill, in order
    next_candle_ms: int = 0  # candles opening before this cannot fill it (any more)
    stop_price: Decimal = Decimal(0)  # STOP_LOSS: the trigger
    fate: Fate | None = None  # a MARKET order that does not simply fill (the fault matrix)
    ends_at_ms: int = 0  # when a fated order ends by itself (expired or rejected), if it does
    order_list_id: int = -1  # the OCO list it is a leg of, if any
    stop_fate: OrderFate | None = None  # a STOP_LOSS that fills only in part when triggered

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_dict(self) -> dict:
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id, "symbol": self.symbol,
            "side": self.side, "type": self.type, "time_in_force": self.time_in_force,
            "price": float(self.price), "orig_qty": float(self.orig_qty),
            "executed_qty": float(self.executed_qty), "cumulative_quote_qty": float(self.cumulative_quote_qty),
            "status": self.status, "time": self.time, "update_time": self.update_time, "locked": float(self.locked),
        }


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool

    def to_dict(self) -> dict:
        return {
            "trade_id": self.trade_id, "order_id": self.order_id, "symbol": self.symbol, "side": self.side,
            "price": float(self.price), "qty": float(self.qty), "quote_qty": float(self.quote_qty),
            "commission": float(self.commission), "commission_asset": self.commission_asset,
            "time": self.time, "is_maker": self.is_maker,
        }


class Engine(OrderLists):
    """The account and its matching, driven by the clock and the candles."""

    def __init__(
        self,
        spec: SymbolSpec,
        candles: Candles,
        clock: Clock,
        balances: dict[str, float],
        *,
        fee_rate: float,
        partial_fills: int,
        fee_mode: FeeMode = FeeMode.QUOTE,
    ) -> None:
        if partial_fills < 1:
            raise ValueError("partial_fills must be >= 1")
        self.spec = spec
        self.candles = candles
        self.clock = clock
        self.fee_rate = dec(fee_rate)
        self.fees = FeeModel(FeeMode(fee_mode), self.fee_rate)
        self.partial_fills = int(partial_fills)
        # asset -> [free, locked]
        self.wallet: dict[str, list[Decimal]] = {a.upper(): [dec(v), Decimal(0)] for a, v in balances.items()}
        for asset in (spec.base, spec.quote):
            self.wallet.setdefault(asset, [Decimal(0), Decimal(0)])
        self.orders: list[Order] = []
        self.lists: list[OrderList] = []
        self.trades: list[Trade] = []
        self._next_order_id = 1
        self._next_trade_id = 1
        self._cancel_ids = 0

    # -- queries ---------------------------------------------------------------------------

    @property
    def next_order_id(self) -> int:
        return self._next_order_id

    def find(self, order_id: int | None = None, client_order_id: str | None = None) -> Order | None:
        """By order id, else by client id (the newest order carrying it: ids are reusable once closed)."""
        if order_id is not None:
            return self.orders[order_id - 1] if 1 <= order_id <= len(self.orders) else None
        for order in reversed(self.orders):
            if order.client_order_id == client_order_id:
                return order
        return None

    def fee(self, notional: Decimal) -> Decimal:
        """What a buy of this notional costs in the quote currency on top of it."""
        return self.fees.quote_cost(notional)

    # -- placing and cancelling ------------------------------------------------------------

    def place(
        self,
        *,
        side: str,
        type: str,
        quantity: Decimal | None,
        quote_order_qty: Decimal | None,
        price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str,
        fate: OrderFate | None = None,
        stop_price: Decimal | None = None,
        lock: bool = True,
    ) -> tuple[Order, list[Trade]]:
        """Validate against the filters and the balance, then fill or rest. Raises ApiError.
        `lock=False`: an OCO's limit leg, whose quantity its stop leg locked already."""
        self.sync()
        spec, now = self.spec, self.clock.now_ms()
        current = self.candles.current_price(now)
        if current is None:
            raise ApiError(*MARKET_CLOSED)

        if type == "MARKET" and quantity is None:
            # quoteOrderQty: spend (or receive) about this much quote; the quantity is floored to the step.
            quantity = (quote_order_qty / current).quantize(spec.step, rounding=ROUND_DOWN)
        assert quantity is not None
        limit = type in ("LIMIT", "LIMIT_MAKER")
        if limit:
            assert price is not None
            if price < spec.min_price or price > spec.max_price or price % spec.tick != 0:
                raise filter_failure("PRICE_FILTER")
        if quantity < spec.min_qty or quantity > spec.max_qty or (quantity - spec.min_qty) % spec.step != 0:
            raise filter_failure("LOT_SIZE")
        if type == "STOP_LOSS":
            assert stop_price is not None
            if stop_price < spec.min_price or stop_price > spec.max_price or stop_price % spec.tick != 0:
                raise filter_failure("PRICE_FILTER")
            if (side == "SELL" and stop_price >= current) or (side == "BUY" and stop_price <= current):
                raise ApiError(-2010, "Stop price would trigger immediately.")
        reference = price if limit else stop_price if type == "STOP_LOSS" else current
        if quantity * reference < spec.min_notional or (limit and quantity * reference > spec.max_notional):
            raise filter_failure("NOTIONAL")
        if any(o.is_open and o.client_order_id == client_order_id for o in self.orders):
            raise ApiError(-2010, DUPLICATE_ORDER)

        marketable = type == "MARKET" or (limit and (
            (side == "BUY" and price >= current) or (side == "SELL" and price <= current)))
        if marketable and type == "LIMIT_MAKER":
            raise ApiError(-2010, "Order would immediately match and take.")
        parts = self._split(quantity)
        # What to lock: a buy holds the quote cost plus fees at the worst price it can pay.
        if side == "BUY":
            worst = price if limit else (stop_price or current) * 2 if type == "STOP_LOSS" else current
            asset, need = spec.quote, sum((p * worst + self.fee(p * worst) for p in parts), Decimal(0))
        else:
            asset, need = spec.base, quantity
        if not lock:
            need = Decimal(0)
        if self.wallet[asset][0] < need:
            raise ApiError(-2010, INSUFFICIENT_BALANCE)

        order = Order(
            order_id=self._next_order_id, client_order_id=client_order_id, symbol=spec.id, side=side, type=type,
            time_in_force=time_in_force if limit else None, price=price if limit else Decimal(0),
            orig_qty=quantity, time=now, update_time=now, locked=need, parts=parts, next_candle_ms=now,
            stop_price=stop_price if type == "STOP_LOSS" else Decimal(0),
            stop_fate=fate if type == "STOP_LOSS" else None,
        )
        self._next_order_id += 1
        self.orders.append(order)
        self._move(asset, need, lock=True)

        trades: list[Trade] = []
        if marketable:
            now_parts = len(parts) if fate is None or type != "MARKET" else min(fate.parts, len(parts))
            for _ in range(now_parts):
                trades.append(self._fill(order, current, now, maker=False))
            if order.parts:
                self._doom(order, fate.fate, now)
        elif time_in_force in ("IOC", "FOK"):
            # Nothing is fillable now (liquidity is unlimited, so FOK and IOC agree): expire.
            order.status = "EXPIRED"
            order.parts = []
            self._release(order)
        return order, trades

    def cancel(self, order: Order, siblings: bool = True) -> str:
        """Cancel an open order, releasing what it locked; returns the cancel's own client id.
        A leg of an OCO list takes the other leg with it, as on Binance."""
        order.status = "CANCELED"
        order.update_time = self.clock.now_ms()
        order.parts = []
        self._release(order)
        if siblings:
            self._cancel_siblings(order)
        self._cancel_ids += 1
        return f"cancel-{self._cancel_ids}"

    def _doom(self, order: Order, fate: Fate, now: int) -> None:
        """What becomes of a MARKET order whose parts did not all fill at once."""
        if fate == Fate.EXPIRE:
            self._end(order, "EXPIRED", now)
            return
        order.fate = fate
        n = self.candles.revealed(now)
        following = self.candles.open_time(n) if n < len(self.candles) else now + self.candles.interval_ms
        if fate == Fate.STAY_OPEN:
            order.next_candle_ms = following
        else:
            order.ends_at_ms = following

    def _end(self, order: Order, status: str, when: int) -> None:
        order.status, order.parts, order.update_time = status, [], when
        self._release(order)

    # -- matching resting orders -----------------------------------------------------------

    def sync(self) -> None:
        """Fill resting LIMIT orders against the candles revealed since they were last looked at.

        Candles are walked in time order (all orders per candle), so trade ids follow time.
        """
        candles, now = self.candles, self.clock.now_ms()
        for order in self.orders:
            if order.is_open and order.ends_at_ms and order.ends_at_ms <= now:
                self._end(order, "EXPIRED" if order.fate == Fate.EXPIRE_LATER else "REJECTED", order.ends_at_ms)
        resting = [o for o in self.orders
                   if o.is_open and (o.type in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS") or o.fate == Fate.STAY_OPEN)]
        if not resting:
            return
        start = candles.first_at_or_after(min(o.next_candle_ms for o in resting))
        for i in range(start, candles.revealed(now)):
            t = candles.open_time(i)
            closed = candles.is_closed(i, now)
            o_, h, l, _, _ = candles.known(i, now)
            for order in resting:
                if not order.is_open or order.next_candle_ms > t:
                    continue
                opened = candles.price(o_)
                if order.type == "MARKET":  # left open: one part at each later candle's open
                    self._fill(order, opened, t, maker=False)
                    order.next_candle_ms = t + candles.interval_ms
                    continue
                if order.type == "STOP_LOSS":
                    self._trigger(order, opened, candles.price(h), candles.price(l), t, closed)
                    continue
                if order.side == "BUY":
                    at_open, crossed = opened <= order.price, candles.price(l) <= order.price
                else:
                    at_open, crossed = opened >= order.price, candles.price(h) >= order.price
                if crossed:
                    fill_time = t if at_open else t + candles.interval_ms - 1
                    self._fill(order, order.price, fill_time, maker=True)
                if crossed or closed:  # an unfilled candle in progress may still fill when it closes
                    order.next_candle_ms = t + candles.interval_ms

    def _trigger(self, order: Order, opened: Decimal, high: Decimal, low: Decimal, t: int, closed: bool) -> None:
        """A stop-market against one candle: all of it fills once the stop is reached."""
        stop = order.stop_price
        selling = order.side == "SELL"
        at_open = opened <= stop if selling else opened >= stop
        crossed = low <= stop if selling else high >= stop
        if crossed:
            price, when = (opened, t) if at_open else (stop, t + self.candles.interval_ms - 1)
            parts = len(order.parts) if order.stop_fate is None else order.stop_fate.parts
            while order.parts and order.is_open and parts > 0:
                self._fill(order, price, when, maker=False)
                parts -= 1
            if order.is_open:  # the fault matrix: the rest of the triggered order found no liquidity
                self._end(order, "EXPIRED", when)
        if crossed or closed:
            order.next_candle_ms = t + self.candles.interval_ms

    # -- internals -------------------------------------------------------------------------

    def _split(self, quantity: Decimal) -> list[Decimal]:
        """Near-equal parts on the step grid, the remainder on the last one."""
        steps = int(quantity / self.spec.step)
        n = max(1, min(self.partial_fills, steps))
        part = (Decimal(steps // n) * self.spec.step).quantize(self.spec.step)
        parts = [part] * (n - 1)
        return parts + [quantity - part * (n - 1)]

    def _fill(self, order: Order, price: Decimal, time: int, *, maker: bool) -> Trade | None:
        if order.order_list_id >= 0:
            self._claim_lock(order)
        qty = order.parts[0]
        notional = qty * price
        spec = self.spec
        buying = order.side == "BUY"
        fee, fee_asset = self.fees.charge(buying, qty, notional, spec.base, spec.quote,
                                          self.wallet.get(self.fees.asset, [Decimal(0)])[0])
        cost = notional + (fee if fee_asset == spec.quote else 0)
        if buying and cost > order.locked:
            # a market order left open fills at a later price than it locked for
            short = cost - order.locked
            if self.wallet[spec.quote][0] < short:
                self._end(order, "EXPIRED", time)  # as Binance expires what the balance cannot pay
                return None
            self._move(spec.quote, short, lock=True)
            order.locked += short
        order.parts.pop(0)
        if buying:
            self._spend_locked(spec.quote, order, cost)
            self.wallet[spec.base][0] += qty
        else:
            self._spend_locked(spec.base, order, qty)
            self.wallet[spec.quote][0] += notional
        if fee_asset != spec.quote or not buying:
            self.wallet.setdefault(fee_asset, [Decimal(0), Decimal(0)])[0] -= fee
        order.executed_qty += qty
        order.cumulative_quote_qty += notional
        order.update_time = time
        order.status = "FILLED" if not order.parts else "PARTIALLY_FILLED"
        trade = Trade(
            trade_id=self._next_trade_id, order_id=order.order_id, symbol=order.symbol, side=order.side,
            price=price, qty=qty, quote_qty=notional, commission=fee, commission_asset=fee_asset,
            time=time, is_maker=maker,
        )
        self._next_trade_id += 1
        self.trades.append(trade)
        if order.status == "FILLED":
            self._release(order)  # a marketable buy that paid less than it locked gets the rest back
        if order.order_list_id >= 0:
            self._end_siblings(order, time)
        return trade

    def _spend_locked(self, asset: str, order: Order, amount: Decimal) -> None:
        self.wallet[asset][1] -= amount
        order.locked -= amount

    def _release(self, order: Order) -> None:
        asset = self.spec.quote if order.side == "BUY" else self.spec.base
        self._move(asset, order.locked, lock=False)
        order.locked = Decimal(0)

    def _move(self, asset: str, amount: Decimal, *, lock: bool) -> None:
        free_locked = self.wallet[asset]
        sign = 1 if lock else -1
        free_locked[0] -= sign * amount
        free_locked[1] += sign * amount
