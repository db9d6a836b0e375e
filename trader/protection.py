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

With a take-profit configured, on an exchange with OCO lists (Binance spot, `supports_oco`)
the stop and a limit sell at the take-profit level rest together as one OCO list: Binance
locks the coins under a resting order, so a second order for them cannot rest beside the
stop, and a list whose one leg fills expires the other. Its legs are two ledger orders (the
stop `...-p`, the take-profit `...-q`, the list `...-o`), placed, settled and cancelled like
the stop alone. Elsewhere the take-profit is checked at each candle close, as before.

A protective exit that ends partly filled (a stop that triggered into a thin book, a market
exit of the daemon's own that expired) does not leave the rest unguarded until the next
candle: the rest is sold again at once under a numbered id (`exit_id`, a few tries per
candle), and the watch looks at what rests on the exchange every few seconds, selling what a
leg left behind past its level or placing the protection again for it.

Where the exchange has no stop orders, or refuses the stop, the daemon watches the price
between candle closes instead (`watch`, the ticker every few seconds) and sells at market
once it reaches the level; at each candle close the level is also checked against the
candle's range, as in the backtest (`RiskEngine.exit_for_bar`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import select

from .domain import OrderReason, OrderStatus, OrderType, Side, protective_order_id
from .errors import ExchangeError
from .ledger import store
from .ledger.models import Order
from .timeframes import timeframe_seconds

log = logging.getLogger("trader.protection")

MAX_EXIT_TRIES = 4  # a protective exit and the retries of what it left, per candle and reason
LOOK_SECONDS = 15.0  # how often the watch asks the exchange about the orders resting there
OCO_REFUSALS = 2  # refused this many times in a row, the run places the stop alone
WATCH_SECONDS = 5  # the price watch's period (live), where no stop rests on the exchange


class InForce(StrEnum):
    """Which protection a position has, for `trader status` and the dashboard."""

    EXCHANGE_OCO = "exchange_oco"  # the stop and the take-profit rest on the exchange as one OCO list
    EXCHANGE_STOP = "exchange_stop"  # a stop-market order rests on the exchange
    CANDLE_CLOSE = "candle_close"  # the daemon checks the level: the price every few seconds, each candle
    NONE = "none"  # flat, or no stop-loss configured


class _Stray:
    """An exchange order the ledger does not hold open, as the broker's cancel wants it."""

    status = OrderStatus.OPEN

    def __init__(self, client_order_id: str):
        self.client_order_id = client_order_id


def resting(session, book: str, kind: OrderType = OrderType.STOP_MARKET) -> Order | None:
    """The book's protective stop (or take-profit leg) whose outcome is not settled yet (open,
    or in doubt)."""
    return session.scalars(select(Order).where(
        Order.book == book, Order.type == kind,
        Order.status.in_([OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN]))
        .order_by(Order.id.desc())).first()


def _open(session, book: str, kind: OrderType = OrderType.STOP_MARKET) -> Order | None:
    order = resting(session, book, kind)
    return order if order is not None and order.status == OrderStatus.OPEN else None


def in_force(session, book: str, qty: float, stop_loss: float | None) -> InForce:
    if _open(session, book) is not None:
        return InForce.EXCHANGE_OCO if _open(session, book, OrderType.TAKE_PROFIT) else InForce.EXCHANGE_STOP
    return InForce.CANDLE_CLOSE if qty > 0.0 and stop_loss else InForce.NONE


def _short(order: Order) -> bool:
    """Settled, and with less filled than it was for (expired, rejected, cancelled as stale)."""
    return not order.status.unresolved and order.status != OrderStatus.NOT_SENT \
        and order.filled < order.amount * (1 - 1e-9)


class Protection:
    """The engine's resting stop, or stop and take-profit (live brokers that can place one)."""

    def __init__(self, engine):
        self.engine = engine
        self._supported: bool | None = None
        self._oco: bool | None = None
        self._oco_refusals = 0
        self._looked = 0.0  # when the watch last settled what rests on the exchange (epoch seconds)
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

    def oco(self) -> bool:
        """The take-profit rests with the stop as one OCO list (configured, and the exchange has
        them); else it is checked at each candle close beside the stop on the exchange."""
        if not self.engine.config.risk.take_profit or self._oco_refusals >= OCO_REFUSALS or not self.supported():
            return False
        if self._oco is None:
            try:
                supports = getattr(self.engine.broker, "supports_oco", None)
                self._oco = bool(supports and supports())
            except ExchangeError:  # markets not loaded yet: ask again next tick
                return False
            if not self._oco:
                log.warning("the exchange has no OCO orders for this market: the take-profit is checked at "
                            "each candle close", extra={"event": "protection_no_oco"})
        return self._oco

    def holds(self, s) -> bool:
        """A stop rests on the exchange now (the candle-close stop check stands down)."""
        return _open(s, self.engine.book) is not None

    def holds_take_profit(self, s) -> bool:
        """A take-profit leg rests on the exchange now (the candle-close take-profit stands down)."""
        return _open(s, self.engine.book, OrderType.TAKE_PROFIT) is not None

    def cancel_resting(self, s) -> None:
        """Before a sale of the daemon's own: cancel the stop, or both legs of the list (their
        fills, if one fired, are booked)."""
        for kind in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT):
            order = resting(s, self.engine.book, kind)
            if order is None:
                continue
            if order.status != OrderStatus.OPEN:
                self.engine._settle(s, order)  # in doubt: find it first
                if order.status != OrderStatus.OPEN:
                    continue
            # on Binance cancelling one leg cancels the list: the other leg's cancel is then
            # refused and the broker fetches what it became
            execution = self.engine.broker.cancel(order)
            self.engine._book(s, order, execution)
            log.info("protective order %s cancelled (%s)", order.client_order_id, execution.status,
                     extra={"event": "protection_cancelled", "client_order_id": order.client_order_id})

    # -- exits of the daemon's own -----------------------------------------------------------
    def exit_id(self, s, cid: str) -> str:
        """The id of a stop-loss / take-profit exit decided under `cid`: `cid` itself, or,
        when it ended short with a position left, the next of a few numbered retries. The
        first id not yet settled short is the one to use, so a repeated call never places a
        second order for one try; past the last try nothing more is placed this candle."""
        for n in range(MAX_EXIT_TRIES):
            candidate = cid if n == 0 else f"{cid}{n}"
            order = store.order_by_client_id(s, candidate)
            if order is None or not _short(order):
                return candidate
        return candidate

    def exit(self, s, plan, bar_time: datetime, fill_time: datetime) -> list[str]:
        """Sell at market for a protective exit; what an exit that ended partly filled left
        is sold again at once (a few tries). Returns the client order ids used."""
        engine = self.engine
        cids: list[str] = []
        while len(cids) < MAX_EXIT_TRIES:
            cid = engine._submit(s, plan, bar_time, fill_time=fill_time)
            if cid in cids:
                break
            cids.append(cid)
            order = store.order_by_client_id(s, cid)
            position = s.get(store.Position, engine.book)
            if not _short(order) or order.filled <= 0.0 or engine.risk.is_dust(position.qty):
                break
            amount = float(engine.risk.round_amount(position.qty * (1.0 + 1e-9)))
            log.warning("exit %s ended with %.8g of %.8g filled: selling the %.8g left", cid, order.filled,
                        order.amount, amount, extra={"event": "protection_exit_retry", "client_order_id": cid})
            plan = replace(plan, amount=amount, fee=amount * plan.price * engine.config.risk.fee)
        return cids

    # -- between candle closes ---------------------------------------------------------------
    def watch(self, price: Callable[[], float], now: datetime | None = None) -> str | None:
        """Between candle closes: settle what rests on the exchange (every LOOK_SECONDS) and,
        where it does not cover the position, the last price against the levels (`price` is
        asked only then). At or past one, the position is sold at market under the exit id
        of the candle in progress, the id that candle's close would use, so the two never
        both sell; else the protection is placed again for what is held (after an exit that
        ended short). Returns the client order id sent, if any."""
        engine = self.engine
        if not engine.config.risk.stop_loss or engine._in_doubt:
            return None
        now = now or datetime.now(timezone.utc)
        s = engine._session()
        try:
            cid = self._watch(s, price, now)
            s.commit()
            return cid
        except BaseException:
            s.rollback()
            raise

    def _watch(self, s, price: Callable[[], float], now: datetime) -> str | None:
        engine = self.engine
        self._look(s, now)
        position = s.get(store.Position, engine.book)
        if engine._in_doubt or engine.risk.is_dust(position.qty):
            return None
        if self.holds(s) and (self.holds_take_profit(s) or not self.oco()):
            return None  # the exchange holds what guards the position
        last = price()
        plan = engine.risk.stop_for_price(position.qty, position.entry_price, last)
        if plan is None and self.oco():  # the take-profit leg that should rest does not (filled in part)
            plan = engine.risk.take_for_price(position.qty, position.entry_price, last)
        step = timeframe_seconds(engine.config.timeframe)
        candle = datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=timezone.utc)
        if plan is None:
            self.keep_true(s, candle)  # an exit that ended short, a leg gone: guard what is held
            return None
        log.warning("price %.2f at or past the %s level: selling at market", last, plan.reason,
                    extra={"event": "protection_watch_exit"})
        return self.exit(s, plan, candle, now)[-1]

    def _look(self, s, now: datetime) -> None:
        """Settle the protective orders (and protective exits) the ledger holds unsettled:
        resting ones every LOOK_SECONDS, others (a market exit still open) at once."""
        engine = self.engine
        mine = [o for o in store.unresolved_orders(s, engine.book)
                if o.type != OrderType.MARKET or o.reason in (OrderReason.STOP_LOSS, OrderReason.TAKE_PROFIT)]
        resting_only = all(o.type != OrderType.MARKET and o.status == OrderStatus.OPEN for o in mine)
        if not mine or (resting_only and now.timestamp() - self._looked < LOOK_SECONDS):
            return
        self._looked = now.timestamp()
        for order in mine:
            engine._settle(s, order)

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
        """Make what rests on the exchange match the position after the tick's own orders: the
        stop, with the take-profit as an OCO list where the exchange has them."""
        engine = self.engine
        stop_loss = engine.config.risk.stop_loss
        stop_order = resting(s, engine.book)
        take_order = resting(s, engine.book, OrderType.TAKE_PROFIT)
        legs = [o for o in (stop_order, take_order) if o is not None]
        if any(o.status != OrderStatus.OPEN for o in legs):
            return  # in doubt: the next tick settles it before anything else
        position = s.get(store.Position, engine.book)
        if not stop_loss or engine.risk.is_dust(position.qty) or not self.supported():
            if legs:
                self.cancel_resting(s)
            return
        amount = float(engine.risk.round_amount(position.qty * (1.0 + 1e-9)))
        stop = float(engine.broker.round_price(position.entry_price * (1.0 - stop_loss)))
        take = None
        if self.oco():
            take = float(engine.broker.round_price(position.entry_price * (1.0 + engine.config.risk.take_profit)))

        def true(order, price):
            return order is not None and abs(order.amount - amount) <= 1e-12 and order.price == price

        if true(stop_order, stop) and (take_order is None if take is None else true(take_order, take)):
            return
        if legs:
            self.cancel_resting(s)  # resized: the entry grew, filled in parts, or a leg filled in part
            if engine.risk.is_dust(position.qty):
                return
            amount = float(engine.risk.round_amount(position.qty * (1.0 + 1e-9)))
        cid = protective_order_id(engine.book, engine.config.version, bar_time)
        if store.order_by_client_id(s, cid) is not None:
            return  # placed at this bar already (a retried tick): the next tick looks again
        intent = dict(book=engine.book, mode=engine.broker.mode, symbol=engine.config.symbol, side=Side.SELL,
                      amount=amount, strategy_version=engine.config.version, bar_time=bar_time)
        stop_intent = store.add_intent(s, client_order_id=cid, price=stop, reason=OrderReason.STOP_LOSS,
                                       type=OrderType.STOP_MARKET, **intent)
        if take is None:
            s.commit()  # the intent is in the ledger before the exchange hears of it
            log.info("protective stop %s: sell %.8f at %.2f", cid, amount, stop,
                     extra={"event": "protection_placed", "client_order_id": cid})
            engine._book(s, stop_intent, engine.broker.place_stop(cid, amount, stop))
            return
        take_cid = protective_order_id(engine.book, engine.config.version, bar_time, "q")
        take_intent = store.add_intent(s, client_order_id=take_cid, price=take, reason=OrderReason.TAKE_PROFIT,
                                       type=OrderType.TAKE_PROFIT, **intent)
        s.commit()  # both legs' intents are in the ledger before the exchange hears of them
        log.info("protective OCO %s: sell %.8f at a stop of %.2f or a limit of %.2f", cid, amount, stop, take,
                 extra={"event": "protection_placed", "client_order_id": cid})
        stop_done, take_done = engine.broker.place_oco(
            protective_order_id(engine.book, engine.config.version, bar_time, "o"), cid, take_cid, amount, stop, take)
        engine._book(s, stop_intent, stop_done)
        engine._book(s, take_intent, take_done)
        if stop_done.status == OrderStatus.REJECTED:
            self._oco_refusals += 1
            if self._oco_refusals >= OCO_REFUSALS:  # not allowed (the API key, the market): the stop alone
                log.warning("the exchange refused the OCO list %d times: placing the stop alone, the take-profit "
                            "is checked at each candle close", self._oco_refusals, extra={"event": "protection_no_oco"})
        elif stop_done.status == OrderStatus.OPEN:
            self._oco_refusals = 0
