"""The engine: one tick per closed candle, the same for live trading, paper trading and
replays. Only the feed (what the tick sees) and the broker (who executes) differ; both are
wired at one start-up point, `trader.daemon`.

A tick, in the backtester's order:
1. orders left unresolved (a crash, a timeout) are settled with the broker first; while the
   outcome of one is still in doubt (its request may yet reach the exchange) no new order is
   placed;
2. the stop-loss / take-profit resting on the position is checked against the bar that
   just closed;
3. equity is marked at its close and recorded; the max-drawdown kill switch is checked;
4. the strategy's exposure for that bar is computed with the backtester's own function and,
   when it differs from the last one acted on, the risk engine turns it into an order that
   is committed to the ledger as an intent *before* the broker is called.
Every step is idempotent, so a tick repeated after a crash duplicates nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from . import feebalance
from .config import StrategyConfig
from .domain import (
    Execution,
    MarketView,
    OrderDenied,
    OrderPlan,
    OrderReason,
    OrderStatus,
    OrderType,
    Side,
    TradingState,
    client_order_id,
    split_symbol,
)
from .errors import ExchangeError, OrderRefused, StrategyError, TemporaryExchangeError
from .goals import Goals
from .ledger import hot, store
from .ledger.models import MAIN_BOOK, Order
from .protection import Protection
from .risk import RiskEngine, halt

log = logging.getLogger("trader.engine")

REPLAN = -1.0  # acted_target value that makes the next tick plan afresh


@dataclass
class TickReport:
    bar_time: datetime
    skipped: bool = False
    equity: float = 0.0
    target: float = 0.0
    state: TradingState = TradingState.RUNNING
    orders: list[str] = field(default_factory=list)  # client order ids placed this tick
    denied: list[str] = field(default_factory=list)


class Engine:
    def __init__(self, *, config: StrategyConfig, goals: Goals | None, sessions, broker,
                 risk: RiskEngine | None = None, book: str = MAIN_BOOK, yaml_text: str | None = None):
        self.sessions = sessions
        self.broker = broker
        self.goals = goals
        self.book = book
        self.base, self.quote = split_symbol(config.symbol)
        self.config = config
        self.risk = risk or RiskEngine(config, goals)
        self.trading_paused: str | None = None  # why no new orders may be placed, if any
        self.before_order = None  # called with the intent committed, before the broker: may refuse by raising
        # the stop resting on the exchange (live brokers that can place one); paper keeps the
        # backtester's stops, checked at each candle close
        self.protection = Protection(self) if broker.mode == "live" else None
        self._maybe_pending = True  # settle leftovers of an earlier run before deciding anything
        self._in_doubt: dict[str, float] = {}  # client order id -> seconds its request may still arrive
        self._s = None
        self._held = None
        with sessions.begin() as s:
            store.ensure_version(s, config, yaml_text)
            state, *_ = store.book_rows(s, book, config.symbol, self.quote, self.base,
                                        config.capital, broker.mode)
            state.mode = broker.mode
            state.strategy_version = config.version

    # -- configuration changes -----------------------------------------------------------
    def use_config(self, config: StrategyConfig, yaml_text: str | None = None) -> None:
        """Trade a new strategy version from the next tick on (recorded as an event)."""
        previous = self.config.version
        self.config = config
        self.risk = RiskEngine(config, self.goals, self.risk.limits, self.risk.round_amount)
        with self.sessions.begin() as s:
            store.ensure_version(s, config, yaml_text)
            s.get(store.DaemonState, self.book).strategy_version = config.version
            store.record_event(s, "config_changed", f"strategy version {previous} -> {config.version}",
                               self.book, {"from": previous, "to": config.version})
        log.info("trading strategy version %s (was %s)", config.version, previous,
                 extra={"event": "config_changed", "version": config.version})

    # -- the tick ----------------------------------------------------------------------------
    def tick(self, view: MarketView, now: datetime | None = None) -> TickReport:
        """Process the bar that just closed. One session; commits where the ledger must be
        ahead of the broker (an order intent) and once at the end."""
        now = now or datetime.now(timezone.utc)
        bar_time = view.bar_utc or _utc(view.bar_time)
        report = TickReport(bar_time=bar_time)
        s = self._session()
        try:
            self._tick(s, view, now, bar_time, report)
            hot.end_tick(s)  # also ends a read-only transaction: never hold a snapshot between ticks
            return report
        except BaseException:
            hot.abort_tick(s)  # leave the session usable; the ledger keeps what was committed
            raise

    def _tick(self, s, view: MarketView, now: datetime, bar_time: datetime, report: TickReport) -> TickReport:
        state, position, cash = self._rows(s)
        # `trader halt` / `resume` may have changed the state from another process: a cheap
        # look at the columns they write, and a full refresh only when one differs
        if hot.state_columns(hot.connection_of(s), self.book) != (state.state, state.reason, state.peak_equity):
            s.refresh(state)
        if state.last_bar_time is not None and bar_time <= state.last_bar_time:
            report.skipped, report.state = True, state.state
            return report
        if self._maybe_pending:
            self._resolve_pending(s)
        waiting = bool(self._in_doubt)  # no new order beside one that may still be placed
        o, h, l, c = view.last_ohlc()
        try:
            target = self.config.strategy_def().latest(view.bars, self.config.params)
        except Exception as exc:  # any failure of user-facing strategy code disables it
            raise StrategyError(f"strategy {self.config.strategy} failed on bar {bar_time:%Y-%m-%d %H:%M}: "
                                f"{exc.__class__.__name__}: {exc}") from exc

        # resting exits, against the bar that just closed
        self.risk.stop_on_exchange = self.protection is not None and self.protection.holds(s)
        self.risk.take_profit_on_exchange = self.protection is not None and self.protection.holds_take_profit(s)
        exit_plan = None if waiting else self.risk.exit_for_bar(position.qty, position.entry_price, o, h, l)
        if exit_plan is not None:  # live: what an exit that ended short left is sold again (trader.protection)
            report.orders.extend(self.protection.exit(s, exit_plan, bar_time, bar_time) if self.protection
                                 else [self._submit(s, exit_plan, bar_time, fill_time=bar_time)])

        # equity at the close; the kill switch
        equity = cash.free + position.qty * c
        peak = state.peak_equity
        if peak <= 0.0:
            peak = max(self.config.capital if self.broker.mode == "paper" else 0.0, equity)
        peak = max(peak, equity)
        breach = self.risk.drawdown_breach(equity, peak)
        if breach and state.state != TradingState.HALTED:
            halt(s, self.book, breach, data={"equity": equity, "peak": peak, "bar_time": bar_time.isoformat()})
            log.warning("HALTED: %s", breach, extra={"event": "halted"})
        store.record_equity(s, book=self.book, time=bar_time, equity=equity, cash=cash.free,
                            qty=position.qty, price=c, target=target, strategy_version=self.config.version)
        store.mark_tick(s, state, peak_equity=peak, last_bar_time=bar_time, last_tick_at=now,
                        strategy_version=self.config.version)
        halted = state.state == TradingState.HALTED
        report.equity, report.target, report.state = equity, target, state.state

        # the strategy's target, traded at the open of the bar in progress
        acted = position.acted_target
        want, reason = target, OrderReason.SIGNAL
        if halted:
            if self.goals is None or self.goals.on_halt == "close":
                want, reason = 0.0, OrderReason.HALT
            else:
                want = min(target, acted) if acted >= 0 else 0.0  # no new entries
        plan = None
        if view.next_open is not None and want != acted and not waiting:
            if self.trading_paused:
                log.warning("not trading: %s", self.trading_paused, extra={"event": "trading_paused"})
            else:
                # the ledger's cash is the bot's budget (`capital` plus its results); live,
                # the exchange's free balance caps it: money moved elsewhere is not spent
                spendable = cash.free
                available = self.broker.available_cash()
                if available is not None and available < spendable:
                    spendable = available
                plan = self.risk.plan_for_target(want, position.qty, spendable, view.next_open, reason)
                if not isinstance(plan, OrderPlan):
                    position.acted_target = want
                    if isinstance(plan, OrderDenied):
                        report.denied.append(plan.reason)
                        store.record_event(s, "order_denied", plan.reason, self.book)
                        log.warning("order denied: %s", plan.reason, extra={"event": "order_denied"})
        if isinstance(plan, OrderPlan):
            # the bar's record, the decision and the intent commit together
            report.orders.append(self._submit(s, plan, bar_time, _utc(view.next_time), acted=want))
        if self.protection is not None and not self._in_doubt:
            self.protection.keep_true(s, bar_time)
        return report  # `tick` commits the bar's record

    # -- orders ------------------------------------------------------------------------------
    def _submit(self, s, plan: OrderPlan, bar_time: datetime, fill_time: datetime,
                acted: float | None = None) -> str:
        cid = client_order_id(self.book, self.config.version, bar_time, plan.reason)
        if self.protection is not None and plan.reason in (OrderReason.STOP_LOSS, OrderReason.TAKE_PROFIT):
            cid = self.protection.exit_id(s, cid)  # a retry of an exit that ended short: an id of its own
        if plan.side == Side.SELL and self.protection is not None:
            self.protection.cancel_resting(s)  # the stop holds the coins this sale sells
        order = store.order_by_client_id(s, cid)
        if order is not None and order.status != OrderStatus.NOT_SENT:
            # this decision was taken before a crash: settle it, never place it twice
            s.commit()
            if order.status.unresolved:
                self._settle(s, order)
            return cid
        if order is None:
            order = store.add_intent(s, client_order_id=cid, book=self.book, mode=self.broker.mode,
                                     symbol=self.config.symbol, side=plan.side, amount=plan.amount,
                                     price=plan.price, reason=plan.reason,
                                     strategy_version=self.config.version, bar_time=bar_time)
        else:
            # the exchange refused this very decision (a tick retried after Retry-After): it
            # never saw the id, so sending it again under the same id cannot place it twice
            order.side, order.amount, order.price, order.status = plan.side, plan.amount, plan.price, OrderStatus.INTENT
            order.error = None
        if acted is not None:
            s.get(store.Position, self.book).acted_target = acted
        s.commit()  # the intent is in the ledger before the broker hears of it
        if self.before_order is not None:
            self.before_order()  # the daemon: the ledger that took the intent is whole
        log.info("order %s: %s %.8f %s (%s)", cid, plan.side, plan.amount, self.config.symbol, plan.reason,
                 extra={"event": "order_intent", "client_order_id": cid})
        try:
            execution = self.broker.execute(cid, plan, fill_time)
        except OrderRefused as exc:
            # not placed; the daemon waits as long as the exchange asks before the next request
            self._book(s, order, Execution(OrderStatus.NOT_SENT, error=str(exc)))
            raise
        except TemporaryExchangeError as exc:
            execution = Execution(OrderStatus.UNKNOWN, error=str(exc))
        self._book(s, order, execution)
        return cid

    def resolve_pending(self) -> float | None:
        """Settle every order whose outcome the ledger does not know (start-up, reconnects).
        Returns how many seconds to wait before an order whose request may still reach the
        exchange can be settled (None: nothing is in doubt)."""
        s = self._session()
        try:
            self._resolve_pending(s)
            if self.protection is not None and not self._in_doubt:
                self.protection.cancel_strays(s)  # once a run: what the ledger does not own
                self._reconcile_fee_balances(s)
            s.commit()
        except BaseException:
            s.rollback()
            raise
        return max(self._in_doubt.values(), default=None)

    def _reconcile_fee_balances(self, s) -> None:
        """A third fee currency's balance (BNB) against the exchange's, all orders settled."""
        holding = getattr(self.broker, "holding", None)
        if holding is None:
            return
        try:
            feebalance.reconcile(s, self.book, self.base, self.quote, holding)
        except ExchangeError as exc:  # only a report: the next start compares again
            log.warning("fee balance not compared with the exchange: %s", exc)

    def _rows(self, s):
        # strong references: the session's identity map is weak, and reloading these three
        # rows on every tick would cost more than the tick's own writes (the base balance,
        # held too, is the fourth row a fill moves)
        if self._held is None:
            self._held = (s.get(store.DaemonState, self.book), s.get(store.Position, self.book),
                          s.get(store.Balance, (self.book, self.quote)), s.get(store.Balance, (self.book, self.base)))
        return self._held[:3]

    def _session(self):
        # one session for the engine's life: the book's rows stay in its identity map, so a
        # tick costs one read (the state, which other processes may change) and its writes
        if self._s is None:
            self._s = self.sessions()
        return self._s

    def close(self) -> None:
        if self._s is not None:
            self._s.close()
            self._s, self._held = None, None

    def _resolve_pending(self, s) -> None:
        unsettled = False
        for order in store.unresolved_orders(s, self.book):
            self._settle(s, order)
            unsettled = unsettled or order.status.unresolved
        self._maybe_pending = unsettled

    def _settle(self, s, order: Order) -> None:
        cid = order.client_order_id
        try:
            execution = self.broker.resolve(order, self.config.risk.fee)
        except TemporaryExchangeError as exc:
            log.warning("cannot settle order %s yet: %s", cid, exc, extra={"event": "reconcile_retry"})
            self._maybe_pending = True
            if order.status != OrderStatus.OPEN:
                self._in_doubt[cid] = float(getattr(exc, "retry_after", None) or 0.0)
            return
        if execution.in_flight_for is not None and not execution.fills:
            if cid not in self._in_doubt:
                log.info("order %s is not at the exchange yet; its request may still arrive for %.1f s: "
                         "no new order until then", cid, execution.in_flight_for,
                         extra={"event": "order_in_flight", "client_order_id": cid})
            self._in_doubt[cid] = execution.in_flight_for
            self._maybe_pending = True
            return
        self._in_doubt.pop(cid, None)
        self._book(s, order, execution)

    def _book(self, s, order: Order, execution: Execution) -> None:
        cid = order.client_order_id
        new_fills = 0
        if holding := getattr(self.broker, "holding", None):  # live: a BNB fee's balance starts at the exchange's
            feebalance.seed(s, self.book, execution.fills, self.base, self.quote, holding)
        for fill in execution.fills:
            if store.record_fill(s, order, fill, base=self.base, quote=self.quote):
                new_fills += 1
        order.status = execution.status
        if execution.exchange_order_id:
            order.exchange_order_id = execution.exchange_order_id
        if execution.error:
            order.error = execution.error[:500]
        if execution.status == OrderStatus.NOT_SENT:
            if order.reason in (OrderReason.SIGNAL, OrderReason.HALT):
                # the target was never traded: decide again on the next tick (a stop-loss or
                # take-profit is the risk rules' to place again, on this bar's retry or the next)
                s.get(store.Position, self.book).acted_target = REPLAN
            store.record_event(s, "order_not_sent", f"order {cid} never reached the exchange"
                               + (f": {execution.error}" if execution.error else ""), self.book)
        elif execution.status == OrderStatus.REJECTED:
            store.record_event(s, "order_rejected", f"order {cid} rejected: {execution.error}", self.book)
        if (order.type == OrderType.MARKET and order.exchange_order_id and not execution.status.unresolved
                and order.filled < order.amount * (1 - 1e-9)):
            # accepted, then ended short (expired, rejected, or cancelled as stale): its fills
            # stand, and a signal's target is traded afresh from the real position next tick
            if order.reason in (OrderReason.SIGNAL, OrderReason.HALT):
                s.get(store.Position, self.book).acted_target = REPLAN
            store.record_event(s, "order_ended_short", f"order {cid} ended {execution.status} with "
                               f"{order.filled:.8g} of {order.amount:.8g} filled", self.book)
            log.warning("order %s ended %s with %.8g of %.8g filled", cid, execution.status, order.filled,
                        order.amount, extra={"event": "order_ended_short", "client_order_id": cid})
        if execution.status.unresolved:
            self._maybe_pending = True
        s.commit()
        if execution.status in (OrderStatus.REJECTED, OrderStatus.UNKNOWN):
            log.warning("order %s %s: %s", cid, execution.status, execution.error,
                        extra={"event": f"order_{execution.status}", "client_order_id": cid})
        elif new_fills:
            log.info("order %s %s with %d fill(s)", cid, execution.status, new_fills,
                     extra={"event": "order_filled", "client_order_id": cid})


def _utc(when) -> datetime:
    if isinstance(when, pd.Timestamp):
        when = when.to_pydatetime()
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
