"""Brokers: where an allowed order is executed. The engine, the risk engine and the ledger
are the same for both; only this step differs.

* `PaperBroker` fills at the modeled price with the configured fee and slippage: the very
  numbers the backtester computes.
* `LiveBroker` sends a market order with its deterministic client order id through the
  exchange adapter and books what the exchange reports. An order the exchange does not know
  is only given up (`not_sent`) once its request can no longer be accepted: a request that
  timed out on our side may still be on its way (see `ExchangeAdapter.order_expiry_seconds`).
  A market order the exchange still holds open when it is next looked at (the next tick, a
  restart) is stale: it is cancelled, its fills stand, and the next decision starts from what
  was really bought or sold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from .domain import Execution, FillReport, OrderPlan, OrderStatus, Side
from .errors import InsufficientFunds, OrderOutcomeUnknown, OrderRejected


class Broker(Protocol):
    mode: str

    def execute(self, client_order_id: str, plan: OrderPlan, when: datetime) -> Execution: ...

    def resolve(self, order, fee_rate: float) -> Execution: ...

    def available_cash(self) -> float | None:
        """What the exchange lets us spend now, when that can differ from the ledger."""


class PaperBroker:
    mode = "paper"

    def __init__(self, quote: str):
        self.quote = quote

    def execute(self, client_order_id: str, plan: OrderPlan, when: datetime) -> Execution:
        fill = FillReport(trade_id=f"paper-{client_order_id}", side=plan.side, amount=plan.amount,
                          price=plan.price, fee=plan.fee, fee_currency=self.quote, time=when)
        return Execution(OrderStatus.FILLED, (fill,))

    def available_cash(self) -> float | None:
        return None  # the ledger's cash is all there is

    def supports_stops(self) -> bool:
        return False  # the backtester's stop semantics, checked at each candle close

    def resolve(self, order, fee_rate: float) -> Execution:
        """An intent a crash left behind: the paper exchange is this process, so it was never
        executed; execute it now at the price it was decided on, as if nothing happened."""
        fill = FillReport(trade_id=f"paper-{order.client_order_id}", side=Side(order.side), amount=order.amount,
                          price=order.price, fee=order.amount * order.price * fee_rate, fee_currency=self.quote,
                          time=order.bar_time)
        return Execution(OrderStatus.FILLED, (fill,))


class LiveBroker:
    mode = "live"

    def __init__(self, adapter, base: str, quote: str, clock: Callable[[], float] = time.time):
        self.adapter = adapter
        self.base = base
        self.quote = quote
        self.clock = clock  # the clock the exchange client signs requests with
        # An order this process did not send was sent (if at all) by an earlier process,
        # which is gone: we hold the book's lock. So its request was signed before now.
        self._started = clock()
        self._sent: dict[str, float] = {}  # client order id -> when this process sent it

    def execute(self, client_order_id: str, plan: OrderPlan, when: datetime) -> Execution:
        self._sent[client_order_id] = self.clock()
        try:
            order = self.adapter.create_market_order(plan.side, plan.amount, client_order_id)
        except OrderOutcomeUnknown as exc:
            return Execution(OrderStatus.UNKNOWN, error=str(exc))
        except (InsufficientFunds, OrderRejected) as exc:
            return Execution(OrderStatus.REJECTED, error=str(exc))
        return self._booked(order)

    def available_cash(self) -> float | None:
        free, _used, _total = self.adapter.fetch_balance().get(self.quote, (0.0, 0.0, 0.0))
        return float(free)

    def holding(self, currency: str) -> float:
        """What the account holds of `currency` (a fee currency's balance: trader.feebalance)."""
        return float(self.adapter.fetch_balance().get(currency, (0.0, 0.0, 0.0))[2])

    # -- protective orders resting on the exchange ---------------------------------------------
    def supports_stops(self) -> bool:
        return self.adapter.supports_stop_orders()

    def round_price(self, price: float) -> float:
        return self.adapter.round_price(price)

    def place_stop(self, client_order_id: str, amount: float, stop_price: float) -> Execution:
        self._sent[client_order_id] = self.clock()
        try:
            order = self.adapter.create_stop_order("sell", amount, stop_price, client_order_id)
        except OrderOutcomeUnknown as exc:
            return Execution(OrderStatus.UNKNOWN, error=str(exc))
        except (InsufficientFunds, OrderRejected) as exc:
            return Execution(OrderStatus.REJECTED, error=str(exc))
        return self._booked(order)

    def supports_oco(self) -> bool:
        return self.adapter.supports_oco()

    def place_oco(self, list_id: str, stop_id: str, limit_id: str, amount: float, stop_price: float,
                  limit_price: float) -> tuple[Execution, Execution]:
        """A stop-loss and a take-profit as one OCO list: (the stop leg's execution, the
        take-profit leg's). One request places both or neither, so both share its outcome."""
        now = self.clock()
        self._sent[stop_id] = self._sent[limit_id] = now
        try:
            stop, limit = self.adapter.create_oco_sell(amount, stop_price, limit_price, list_id=list_id,
                                                       stop_id=stop_id, limit_id=limit_id)
        except OrderOutcomeUnknown as exc:
            return Execution(OrderStatus.UNKNOWN, error=str(exc)), Execution(OrderStatus.UNKNOWN, error=str(exc))
        except (InsufficientFunds, OrderRejected) as exc:
            return Execution(OrderStatus.REJECTED, error=str(exc)), Execution(OrderStatus.REJECTED, error=str(exc))
        return self._booked(stop), self._booked(limit)

    def open_orders(self) -> list:
        return self.adapter.fetch_open_orders()

    def cancel(self, order) -> Execution:
        """Cancel a resting order; what it became (with any fills) is fetched after."""
        found = self._cancel(order.client_order_id, None)
        return self._booked(found) if found is not None else Execution(OrderStatus(order.status))

    def resolve(self, order, fee_rate: float) -> Execution:
        cid = order.client_order_id
        found = self.adapter.fetch_order(cid)
        if found is not None:
            self._sent.pop(cid, None)
            if found.status == "open" and getattr(order, "type", "market") == "market":
                found = self._cancel(cid, found)
            return self._booked(found)
        sent = self._sent.get(cid, self._started)
        left = sent + self.adapter.order_expiry_seconds() - self.clock()
        if left > 0:
            return Execution(OrderStatus(order.status), in_flight_for=left)
        self._sent.pop(cid, None)
        return Execution(OrderStatus.NOT_SENT)

    def _cancel(self, cid: str, found):
        try:
            self.adapter.cancel_order(cid)
        except OrderRejected:
            pass  # it ended meanwhile (filled, expired): what it became is fetched below
        return self.adapter.fetch_order(cid) or found

    def _booked(self, order) -> Execution:
        return Execution(OrderStatus.of_exchange(order.status, order.filled), tuple(order.fills),
                         exchange_order_id=order.order_id)
