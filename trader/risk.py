"""The risk engine: between what the strategy wants and what the broker is asked to do.

Sizing, stop-loss and take-profit come from `backtest.rules` (the very functions the
backtester runs), so paper trading and backtests agree trade for trade. On top of them:
the market's minimum amount and notional and its amount precision (live), and the
max-drawdown kill switch from the goals' failure thresholds.

It also owns the book's trading state: `halt` and `resume` are the only writers of it, for
the kill switch, an operational failure, `trader halt` / `resume` and Hermes' failing verdict
alike. The running daemon reads the state at its next tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .backtest import rules
from .domain import OrderDenied, OrderPlan, OrderReason, Side, TradingState
from .ledger import store
from .ledger.models import DaemonState, EquityPoint

if TYPE_CHECKING:  # annotations only: `trader halt` / `resume` need none of the settings' models
    from .config import StrategyConfig
    from .goals import Goals


@dataclass(frozen=True)
class Limits:
    """What the market accepts (from ccxt's market description; zeros when unknown)."""

    amount_step: float = 0.0
    min_amount: float = 0.0
    min_notional: float = 0.0


class RiskEngine:
    def __init__(self, config: StrategyConfig, goals: Goals | None, limits: Limits = Limits(),
                 round_amount=None):
        self.config = config
        self.goals = goals
        self.limits = limits
        self.round_amount = round_amount  # live: floor to the market's precision
        self.stop_on_exchange = False  # a stop rests on the exchange: the candle-close check stands down
        self.take_profit_on_exchange = False  # so does the take-profit, the other leg of an OCO list

    # -- exits resting on an open position ------------------------------------------------
    def exit_for_bar(self, qty: float, entry: float, open_: float, high: float, low: float) -> OrderPlan | None:
        risk = self.config.risk
        if self.is_dust(qty) or not (risk.stop_loss or risk.take_profit):
            return None
        stop_loss = 0.0 if self.stop_on_exchange else risk.stop_loss or 0.0
        take_profit = 0.0 if self.take_profit_on_exchange else risk.take_profit or 0.0
        reason, price = rules.exit_hit(entry, open_, high, low, stop_loss, take_profit, risk.slippage)
        if reason < 0:
            return None
        paid, _ = rules.close_out(qty, price, risk.fee)
        plan = self._sendable(Side.SELL, float(qty), float(price), float(paid), rules.REASON_NAMES[reason], whole=True)
        # a dust remainder the market will not take cannot be stopped out: leave it be
        return plan if isinstance(plan, OrderPlan) else None

    def stop_for_price(self, qty: float, entry: float, price: float) -> OrderPlan | None:
        """Between candle closes (no stop rests on the exchange): the last price at or below
        the stop level sells the position at market, modeled with the stop's slippage."""
        stop_loss = self.config.risk.stop_loss
        if not stop_loss or self.is_dust(qty) or price > entry * (1.0 - stop_loss):
            return None
        fill = price * (1.0 - self.config.risk.slippage)
        paid, _ = rules.close_out(qty, fill, self.config.risk.fee)
        plan = self._sendable(Side.SELL, float(qty), float(fill), float(paid), OrderReason.STOP_LOSS, whole=True)
        return plan if isinstance(plan, OrderPlan) else None

    def take_for_price(self, qty: float, entry: float, price: float) -> OrderPlan | None:
        """Between candle closes, where the take-profit should rest on the exchange but does
        not (its OCO leg filled in part): the last price at or above the level sells at market."""
        take_profit = self.config.risk.take_profit
        if not take_profit or self.is_dust(qty) or price < entry * (1.0 + take_profit):
            return None
        paid, _ = rules.close_out(qty, price, self.config.risk.fee)
        plan = self._sendable(Side.SELL, float(qty), float(price), float(paid), OrderReason.TAKE_PROFIT, whole=True)
        return plan if isinstance(plan, OrderPlan) else None

    # -- the strategy's target -----------------------------------------------------------
    def plan_for_target(self, want: float, qty: float, cash: float, price: float,
                        reason: OrderReason = OrderReason.SIGNAL) -> OrderPlan | OrderDenied | None:
        risk = self.config.risk
        side, amount, fill, paid, _ = rules.rebalance(
            want, qty, cash, price, risk.stake_fraction, risk.fee, risk.slippage)
        if side == rules.NONE:
            return None
        if want <= 0.0 and self.is_dust(float(amount)):
            return None  # flat already: nothing the market would take is held
        return self._sendable(rules.SIDE_NAMES[side], float(amount), float(fill), float(paid), reason, whole=want <= 0.0)

    def is_dust(self, qty: float) -> bool:
        """Less than the market's smallest order: what a whole sale leaves when a fee taken
        from the base asset put the holding off the market's step. It counts as flat (no stop
        watches it, no sale is tried) and rides along into the next entry."""
        if self.round_amount is None or qty <= 0.0:
            return qty <= 0.0
        return float(self.round_amount(qty * (1.0 + 1e-9))) < max(self.limits.min_amount, 1e-300)

    def _sendable(self, side: Side, amount: float, fill: float, paid: float, reason: OrderReason,
                  whole: bool) -> OrderPlan | OrderDenied:
        """The order as the market will take it: the amount on the market's step (live), and
        within its minimum amount and notional."""
        if self.round_amount is not None:
            # floor, never round up: a buy must not spend more than it was sized on; selling
            # everything forgives float noise (a sum of partial fills a hair under the step)
            raw = amount * (1.0 + 1e-9) if whole else amount
            rounded = float(self.round_amount(raw))
            if rounded != amount:
                amount = rounded
                paid = amount * fill * self.config.risk.fee
        if amount <= 0.0:
            return OrderDenied(f"{side} amount rounds to zero at the market's precision")
        if amount < self.limits.min_amount:
            return OrderDenied(f"{side} of {amount:g} is below the market's minimum amount {self.limits.min_amount:g}")
        if amount * fill < self.limits.min_notional:
            return OrderDenied(
                f"{side} of {amount * fill:.2f} is below the market's minimum notional {self.limits.min_notional:g}")
        return OrderPlan(side, amount, fill, paid, reason)

    # -- the kill switch -------------------------------------------------------------------
    def drawdown_breach(self, equity: float, peak: float) -> str | None:
        limit = self.goals.max_drawdown_limit if self.goals else None
        if limit is None or peak <= 0:
            return None
        drawdown = 1.0 - equity / peak
        if drawdown > limit:
            return (f"drawdown {drawdown:.2%} exceeds the failure threshold {limit:.2%} "
                    f"(equity {equity:,.2f}, peak {peak:,.2f})")
        return None


# -- the trading state: halt and resume ---------------------------------------------------------

def halted_reason(session: Session, book: str) -> str | None:
    """Why the book is halted, or None while it trades (or has never run)."""
    state = session.get(DaemonState, book)
    return state.reason if state is not None and state.state == TradingState.HALTED else None


def halt(session: Session, book: str, reason: str, *, data: dict[str, Any] | None = None,
         operational: bool = False) -> None:
    """Stop new entries of `book` from its next tick (open positions follow goals.on_halt),
    and record why. `operational`: a failure of the daemon itself, also shown as its last
    error by /health and `trader status`."""
    state = _state(session, book, "halt")
    reason = store.scrub(reason)
    state.state, state.reason = TradingState.HALTED, reason
    if operational:
        state.last_error = reason
    store.record_event(session, "halted", reason, book, data)


def resume(session: Session, book: str, reason: str | None = None) -> None:
    """Trade again from the next tick; drawdown is measured afresh from the last equity point,
    or the breach that halted the book would halt it again at once."""
    state = _state(session, book, "resume")
    state.state, state.reason = TradingState.RUNNING, reason
    last = session.scalars(select(EquityPoint).where(EquityPoint.book == book)
                           .order_by(EquityPoint.time.desc())).first()
    if last is not None:
        state.peak_equity = last.equity
    store.record_event(session, "resumed", reason or "resumed by hand", book)


def _state(session: Session, book: str, what: str) -> DaemonState:
    state = session.get(DaemonState, book)
    if state is None:
        raise LookupError(f"book {book!r} has never run: nothing to {what}")
    return state
