"""Brokers: where an allowed order is executed. The engine, the risk engine and the ledger
are the same for both; only this step differs.

* `PaperBroker` fills at the modeled price with the configured fee and slippage: the very
  numbers the backtester computes.
* `LiveBroker` sends a market order with its deterministic client order id through the
  exchange adapter and books what the exchange reports. An order the exchange does not know
  is only given up (`not_sent`) once its request can no longer be accepted: a request that
  timed out on our side may still be on its way (see `ExchangeAdapter.order_expiry_seconds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .ledger.store import NewFill
from .risk import OrderPlan


@dataclass(frozen=True)
class Execution:
    """What became of an order: its status and the fills (with their quote-balance change)."""

    status: str  # filled | open | rejected | unknown | not_sent
    fills: tuple[tuple[NewFill, float], ...] = ()
    error: str | None = None
    exchange_order_id: str | None = None
    # not at the exchange yet, but its request could still arrive for this many seconds:
    # nothing is decided about it until then
    in_flight_for: float | None = None


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
        fill = NewFill(trade_id=f"paper-{client_order_id}", side=plan.side, amount=plan.amount,
                       price=plan.price, fee=plan.fee, fee_currency=self.quote, time=when)
        return Execution("filled", ((fill, plan.cash_change),))

    def available_cash(self) -> float | None:
        return None  # the ledger's cash is all there is

    def resolve(self, order, fee_rate: float) -> Execution:
        """An intent a crash left behind: the paper exchange is this process, so it was never
        executed; execute it now at the price it was decided on, as if nothing happened."""
        notional = order.amount * order.price
        fee = notional * fee_rate
        change = -(notional + fee) if order.side == "buy" else notional - fee
        fill = NewFill(trade_id=f"paper-{order.client_order_id}", side=order.side, amount=order.amount,
                       price=order.price, fee=fee, fee_currency=self.quote, time=order.bar_time)
        return Execution("filled", ((fill, change),))


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
        from .errors import InsufficientFunds, OrderOutcomeUnknown, OrderRejected

        self._sent[client_order_id] = self.clock()
        try:
            order = self.adapter.create_market_order(plan.side, plan.amount, client_order_id)
        except OrderOutcomeUnknown as exc:
            return Execution("unknown", error=str(exc))
        except (InsufficientFunds, OrderRejected) as exc:
            return Execution("rejected", error=str(exc))
        return self._booked(order)

    def available_cash(self) -> float | None:
        free, _used, _total = self.adapter.fetch_balance().get(self.quote, (0.0, 0.0, 0.0))
        return float(free)

    def resolve(self, order, fee_rate: float) -> Execution:
        cid = order.client_order_id
        found = self.adapter.fetch_order(cid)
        if found is not None:
            self._sent.pop(cid, None)
            return self._booked(found)
        sent = self._sent.get(cid, self._started)
        left = sent + self.adapter.order_expiry_seconds() - self.clock()
        if left > 0:
            return Execution(order.status, in_flight_for=left)
        self._sent.pop(cid, None)
        return Execution("not_sent")

    def _booked(self, order) -> Execution:
        fills = tuple((self._fill(f), self._cash_change(f)) for f in order.fills)
        status = {"closed": "filled", "open": "open"}.get(order.status, order.status)
        if status == "canceled" and order.filled:
            status = "filled"  # a partly filled order the exchange closed: the fills stand
        return Execution(status, fills, exchange_order_id=order.order_id)

    def _fill(self, f) -> NewFill:
        return NewFill(trade_id=str(f.trade_id), side=f.side, amount=float(f.amount), price=float(f.price),
                       fee=float(f.fee), fee_currency=f.fee_currency, time=f.time, exchange_order_id=f.order_id)

    def _cash_change(self, f) -> float:
        notional = float(f.amount) * float(f.price)
        quote_fee = float(f.fee) if f.fee_currency == self.quote else 0.0
        return -(notional + quote_fee) if f.side == "buy" else notional - quote_fee
