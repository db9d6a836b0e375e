"""The stop-loss that rests on the exchange while a live position is open.

A stop checked when a candle closes sells up to a candle late, and not at all while the daemon
is down; a stop-market order resting on the exchange sells at its level whatever the daemon
is doing (freqtrade's `stoploss_on_exchange`). After the tick's own orders, `keep_true` makes
the resting stop match the position: placed after an entry fills, resized (cancelled and
placed again) when the position or its entry price changed, cancelled when the position is
gone. Every placement is an intent in the ledger first, under a deterministic client order id
(`domain.protective_order_id`), and is settled like any order: each tick fetches it, so a stop
that fired, also while the daemon was down, is booked at the exchange's price and the strategy
sees a flat position. A sale of the daemon's own (signal, halt, take-profit) cancels the stop
first, since the stop holds the coins it would sell.

Where the exchange has no stop orders, or refuses the stop, the daemon watches the price
between candle closes instead (`watch`, the ticker every few seconds) and sells at market
once it reaches the level; at each candle close the level is also checked against the
candle's range, as in the backtest (`RiskEngine.exit_for_bar`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import select

from .domain import OrderReason, OrderStatus, OrderType, Side, protective_order_id
from .errors import ExchangeError
from .ledger import store
from .ledger.models import Order
from .timeframes import timeframe_seconds

log = logging.getLogger("trader.protection")


class InForce(StrEnum):
    """Which protection a position has, for `trader status` and the dashboard."""

    EXCHANGE_STOP = "exchange_stop"  # a stop-market order rests on the exchange
    CANDLE_CLOSE = "candle_close"  # the daemon checks the level: the price every few seconds, each candle
    NONE = "none"  # flat, or no stop-loss configured


class _Stray:
    """An exchange order the ledger does not hold open, as the broker's cancel wants it."""

    status = OrderStatus.OPEN

    def __init__(self, client_order_id: str):
        self.client_order_id = client_order_id


def resting(session, book: str) -> Order | None:
    """The book's protective stop whose outcome is not settled yet (open, or in doubt)."""
    return session.scalars(select(Order).where(
        Order.book == book, Order.type == OrderType.STOP_MARKET,
        Order.status.in_([OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN]))
        .order_by(Order.id.desc())).first()


def in_force(session, book: str, qty: float, stop_loss: float | None) -> InForce:
    order = resting(session, book)
    if order is not None and order.status == OrderStatus.OPEN:
        return InForce.EXCHANGE_STOP
    return InForce.CANDLE_CLOSE if qty > 0.0 and stop_loss else InForce.NONE


class Protection:
    """The engine's resting stop (live brokers that can place one)."""

    def __init__(self, engine):
        self.engine = engine
        self._supported: bool | None = None
        self._strays_checked = False

    def supported(self) -> bool:
        if self._supported is None:
            try:
                supports = getattr(self.engine.broker, "supports_stops", None)
                self._supported = bool(supports and supports())
            except ExchangeError as exc:  # markets not loaded yet: ask again next tick
                log.warning("cannot tell yet whether the exchange takes stop orders: %s", exc)
                return False
            if not self._supported:
                log.warning("the exchange has no stop orders for this market: stops are checked at each "
                            "candle close", extra={"event": "protection_candle_close"})
        return self._supported

    def holds(self, s) -> bool:
        """A stop rests on the exchange now (the candle-close stop check stands down)."""
        order = resting(s, self.engine.book)
        return order is not None and order.status == OrderStatus.OPEN

    def cancel_resting(self, s) -> None:
        """Before a sale of the daemon's own: cancel the stop (its fills, if it fired, are booked)."""
        order = resting(s, self.engine.book)
        if order is None:
            return
        if order.status != OrderStatus.OPEN:
            self.engine._settle(s, order)  # in doubt: find it first
            if order.status != OrderStatus.OPEN:
                return
        execution = self.engine.broker.cancel(order)
        self.engine._book(s, order, execution)
        log.info("protective stop %s cancelled (%s)", order.client_order_id, execution.status,
                 extra={"event": "protection_cancelled", "client_order_id": order.client_order_id})

    def watch(self, price: Callable[[], float], now: datetime | None = None) -> str | None:
        """Between candle closes, where no stop rests on the exchange: the last price against
        the stop level (`price` is asked only when a position is held and no stop rests on the
        exchange). At or below it, the position is sold at market under the stop-loss id
        of the candle in progress, the id that candle's close would use, so the two never
        both sell. Returns the client order id sent, if any."""
        engine = self.engine
        if not engine.config.risk.stop_loss or engine._in_doubt:
            return None
        now = now or datetime.now(timezone.utc)
        s = engine._session()
        try:
            if self.holds(s):
                return None
            position = s.get(store.Position, engine.book)
            if engine.risk.is_dust(position.qty):
                return None
            last = price()
            plan = engine.risk.stop_for_price(position.qty, position.entry_price, last)
            if plan is None:
                return None
            step = timeframe_seconds(engine.config.timeframe)
            candle = datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=timezone.utc)
            log.warning("price %.2f at or below the stop level: selling at market", last,
                        extra={"event": "protection_watch_exit"})
            cid = engine._submit(s, plan, candle, fill_time=now)
            s.commit()
            return cid
        except BaseException:
            s.rollback()
            raise

    def cancel_strays(self, s) -> list[str]:
        """Once a run (at start): cancel the book's orders open on the exchange that the ledger
        does not hold open (a ledger restored from an older backup, a hand-placed copy of an
        id), so no forgotten stop sells a later position. Returns their client order ids."""
        if self._strays_checked or not self.supported():
            return []
        engine = self.engine
        prefix = f"ht-{engine.book[:8]}-"
        cancelled = []
        for found in engine.broker.open_orders():
            cid = found.client_order_id or ""
            mine = store.order_by_client_id(s, cid)
            if not cid.startswith(prefix) or (mine is not None and mine.status.unresolved):
                continue
            engine.broker.cancel(_Stray(cid))
            store.record_event(s, "stray_order_cancelled", f"order {cid} was open on the exchange but not in "
                               "the ledger as open: cancelled", engine.book)
            log.warning("stray order %s cancelled", cid, extra={"event": "stray_order_cancelled", "client_order_id": cid})
            cancelled.append(cid)
        self._strays_checked = True
        return cancelled

    def keep_true(self, s, bar_time) -> None:
        """Make the resting stop match the position after the tick's own orders."""
        engine = self.engine
        stop_loss = engine.config.risk.stop_loss
        order = resting(s, engine.book)
        if order is not None and order.status != OrderStatus.OPEN:
            return  # in doubt: the next tick settles it before anything else
        position = s.get(store.Position, engine.book)
        if not stop_loss or engine.risk.is_dust(position.qty) or not self.supported():
            if order is not None:
                self.cancel_resting(s)
            return
        amount = float(engine.risk.round_amount(position.qty * (1.0 + 1e-9)))
        stop = float(engine.broker.round_price(position.entry_price * (1.0 - stop_loss)))
        if order is not None and abs(order.amount - amount) <= 1e-12 and order.price == stop:
            return
        if order is not None:
            self.cancel_resting(s)  # resized: the entry grew, or filled in parts
            if engine.risk.is_dust(position.qty):
                return
            amount = float(engine.risk.round_amount(position.qty * (1.0 + 1e-9)))
        cid = protective_order_id(engine.book, engine.config.version, bar_time)
        if store.order_by_client_id(s, cid) is not None:
            return  # placed at this bar already (a retried tick): the next tick looks again
        intent = store.add_intent(s, client_order_id=cid, book=engine.book, mode=engine.broker.mode,
                                  symbol=engine.config.symbol, side=Side.SELL, amount=amount, price=stop,
                                  reason=OrderReason.STOP_LOSS, strategy_version=engine.config.version,
                                  bar_time=bar_time, type=OrderType.STOP_MARKET)
        s.commit()  # the intent is in the ledger before the exchange hears of it
        log.info("protective stop %s: sell %.8f at %.2f", cid, amount, stop,
                 extra={"event": "protection_placed", "client_order_id": cid})
        engine._book(s, intent, engine.broker.place_stop(cid, amount, stop))
