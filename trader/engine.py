"""The engine: one tick per closed candle, the same for live trading, paper trading and
replays. Only the feed (what the tick sees) and the broker (who executes) differ; both are
wired at one start-up point, `trader.daemon`.

A tick, in the backtester's order:
1. orders left unresolved (a crash, a timeout) are settled with the broker first;
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
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from .config import StrategyConfig
from .errors import TemporaryExchangeError
from .feeds import MarketView
from .goals import Goals
from .ledger import store
from .ledger.models import MAIN_BOOK, EquityPoint, Order
from .risk import OrderDenied, OrderPlan, RiskEngine

log = logging.getLogger("trader.engine")

REPLAN = -1.0  # acted_target value that makes the next tick plan afresh
_PURPOSE = {"signal": "e", "stop_loss": "s", "take_profit": "t", "halt": "h"}


def client_order_id(book: str, version: str, bar_time: datetime, reason: str) -> str:
    """Deterministic: the same decision on the same bar always gets the same id, so a
    retried or replayed tick can find its order instead of placing a second one. At most
    36 characters from [A-Za-z0-9-] (Binance's limit is the tightest we know)."""
    return f"ht-{book[:8]}-{version[:8]}-{int(bar_time.timestamp())}-{_PURPOSE[reason]}"


@dataclass
class TickReport:
    bar_time: datetime
    skipped: bool = False
    equity: float = 0.0
    target: float = 0.0
    state: str = "running"
    orders: list[str] = field(default_factory=list)  # client order ids placed this tick
    denied: list[str] = field(default_factory=list)


def split_symbol(symbol: str) -> tuple[str, str]:
    base, quote = symbol.split("/", 1)
    return base, quote.split(":", 1)[0]


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
        now = now or datetime.now(timezone.utc)
        bar_time = _utc(view.bar_time)
        report = TickReport(bar_time=bar_time)
        with self.sessions.begin() as s:
            state = s.get(store.DaemonState, self.book)
            if state.last_bar_time is not None and bar_time <= state.last_bar_time:
                report.skipped, report.state = True, state.state
                return report

        self.resolve_pending()
        bar = view.bar
        target = float(self.config.strategy_def().exposure(view.bars, self.config.params)[-1])

        # 2. resting exits on the bar that just closed
        with self.sessions.begin() as s:
            position = s.get(store.Position, self.book)
            qty, entry = position.qty, position.entry_price
        exit_plan = self.risk.exit_for_bar(qty, entry, float(bar["open"]), float(bar["high"]), float(bar["low"]))
        if exit_plan is not None:
            report.orders.append(self._submit(exit_plan, bar_time, fill_time=bar_time))

        # 3. equity at the close, the kill switch
        with self.sessions.begin() as s:
            state = s.get(store.DaemonState, self.book)
            position = s.get(store.Position, self.book)
            cash = s.get(store.Balance, (self.book, self.quote))
            close = float(bar["close"])
            equity = cash.free + position.qty * close
            if state.peak_equity <= 0.0:
                state.peak_equity = max(self.config.capital if self.broker.mode == "paper" else 0.0, equity)
            state.peak_equity = max(state.peak_equity, equity)
            breach = self.risk.drawdown_breach(equity, state.peak_equity)
            if breach and state.state != "halted":
                state.state, state.reason = "halted", breach
                store.record_event(s, "halted", breach, self.book, {"equity": equity, "peak": state.peak_equity})
                log.warning("HALTED: %s", breach, extra={"event": "halted"})
            if not s.query(EquityPoint.id).filter_by(book=self.book, time=bar_time).first():
                store.record_equity(s, book=self.book, time=bar_time, equity=equity, cash=cash.free,
                                    qty=position.qty, price=close, target=target,
                                    strategy_version=self.config.version)
            halted, acted = state.state == "halted", position.acted_target
            qty, cash_free = position.qty, cash.free
        report.equity, report.target = equity, target
        report.state = "halted" if halted else "running"

        # 4. the strategy's target
        want, reason = target, "signal"
        if halted:
            if self.goals is None or self.goals.on_halt == "close":
                want, reason = 0.0, "halt"
            else:
                want = min(target, acted) if acted >= 0 else 0.0  # no new entries
        if view.next_open is not None and want != acted:
            if self.trading_paused:
                log.warning("not trading: %s", self.trading_paused, extra={"event": "trading_paused"})
            else:
                plan = self.risk.plan_for_target(want, qty, cash_free, view.next_open, reason)
                if isinstance(plan, OrderPlan):
                    report.orders.append(self._submit(plan, bar_time, _utc(view.next_time), acted=want))
                else:
                    self._set_acted(want, denied=plan)
                    if isinstance(plan, OrderDenied):
                        report.denied.append(plan.reason)

        with self.sessions.begin() as s:
            state = s.get(store.DaemonState, self.book)
            state.last_bar_time, state.last_tick_at = bar_time, now
            state.strategy_version = self.config.version
        return report

    # -- orders ------------------------------------------------------------------------------
    def _submit(self, plan: OrderPlan, bar_time: datetime, fill_time: datetime,
                acted: float | None = None) -> str:
        cid = client_order_id(self.book, self.config.version, bar_time, plan.reason)
        with self.sessions.begin() as s:
            existing = store.order_by_client_id(s, cid)
            if existing is None:
                store.add_intent(s, client_order_id=cid, book=self.book, mode=self.broker.mode,
                                 symbol=self.config.symbol, side=plan.side, amount=plan.amount,
                                 price=plan.price, reason=plan.reason,
                                 strategy_version=self.config.version, bar_time=bar_time)
                if acted is not None:
                    s.get(store.Position, self.book).acted_target = acted
        if existing is not None:
            # this decision was taken before a crash: settle it, never place it twice
            if existing.status in ("intent", "unknown", "open"):
                self._settle(cid)
            return cid
        log.info("order %s: %s %.8f %s (%s)", cid, plan.side, plan.amount, self.config.symbol, plan.reason,
                 extra={"event": "order_intent", "client_order_id": cid})
        try:
            execution = self.broker.execute(cid, plan, fill_time)
        except TemporaryExchangeError as exc:
            execution = _unknown(exc)
        self._book(cid, execution)
        return cid

    def resolve_pending(self) -> None:
        """Settle every order whose outcome the ledger does not know (start-up and ticks)."""
        with self.sessions.begin() as s:
            pending = [o.client_order_id for o in store.unresolved_orders(s, self.book)]
        for cid in pending:
            self._settle(cid)

    def _settle(self, cid: str) -> None:
        try:
            execution = self.broker.resolve(cid)
        except TemporaryExchangeError as exc:
            log.warning("cannot settle order %s yet: %s", cid, exc, extra={"event": "reconcile_retry"})
            return
        self._book(cid, execution)

    def _book(self, cid: str, execution) -> None:
        with self.sessions.begin() as s:
            order: Order = store.order_by_client_id(s, cid)
            new_fills = 0
            for fill, cash_change in execution.fills:
                if store.record_fill(s, order, fill, cash_change=cash_change, base=self.base, quote=self.quote):
                    new_fills += 1
            order.status = execution.status
            if execution.exchange_order_id:
                order.exchange_order_id = execution.exchange_order_id
            if execution.error:
                order.error = execution.error[:500]
            if execution.status == "not_sent":
                # the exchange never saw it: decide again on the next tick
                s.get(store.Position, self.book).acted_target = REPLAN
                store.record_event(s, "order_not_sent", f"order {cid} never reached the exchange", self.book)
            elif execution.status == "rejected":
                store.record_event(s, "order_rejected", f"order {cid} rejected: {execution.error}", self.book)
        if execution.status in ("rejected", "unknown"):
            log.warning("order %s %s: %s", cid, execution.status, execution.error,
                        extra={"event": f"order_{execution.status}", "client_order_id": cid})
        elif new_fills:
            log.info("order %s %s with %d fill(s)", cid, execution.status, new_fills,
                     extra={"event": "order_filled", "client_order_id": cid})

    def _set_acted(self, want: float, denied: OrderDenied | None) -> None:
        with self.sessions.begin() as s:
            s.get(store.Position, self.book).acted_target = want
            if denied is not None:
                store.record_event(s, "order_denied", denied.reason, self.book)
        if denied is not None:
            log.warning("order denied: %s", denied.reason, extra={"event": "order_denied"})


def _unknown(exc: Exception):
    from .brokers import Execution

    return Execution("unknown", error=str(exc))


def _utc(when) -> datetime:
    if isinstance(when, pd.Timestamp):
        when = when.to_pydatetime()
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
