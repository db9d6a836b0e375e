"""What the daemon reports about itself, read from the ledger: the same answer for
`GET /status`, `GET /health` and `trader status`. Never a secret."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from .domain import TradingState, split_symbol
from .ledger import store
from .ledger.models import DaemonState, EquityPoint, Event, Position


def snapshot(session: Session, book: str) -> dict:
    state = session.get(DaemonState, book)
    if state is None:
        return {"book": book, "state": "never started"}
    position = session.get(Position, book)
    last = session.scalars(select(EquityPoint).where(EquityPoint.book == book)
                           .order_by(EquityPoint.time.desc())).first()
    last_event = session.scalars(select(Event).where(Event.book == book)
                                 .order_by(Event.id.desc())).first()
    # now, not at the last close: a fill at the open after it moved the cash and the position
    # (the equity point holds the cash before that order), so both come from their own rows,
    # and equity is that cash plus the position marked at the last close
    cash = _cash_now(session, book, position, last)
    qty = position.qty if position else 0.0
    equity = cash + qty * last.price if last is not None and cash is not None else None
    return {
        "book": book,
        "mode": state.mode,
        "state": state.state,
        "reason": state.reason,
        "strategy_version": state.strategy_version,
        "symbol": position.symbol if position else None,
        "position": {
            "qty": position.qty if position else 0.0,
            "entry_price": position.entry_price if position and position.qty > 0 else None,
            "target": position.acted_target if position else 0.0,
        },
        "protection": _protection(session, book, state, position),
        "equity": equity,
        "pnl": _pnl(session, book, position, last),
        "cash": cash,
        # what the book holds of a third currency its fees are paid in (BNB), as the exchange does
        "fee_balances": _fee_balances(session, book, position),
        "peak_equity": state.peak_equity,
        "last_bar": state.last_bar_time,
        "last_tick": state.last_tick_at,
        "last_error": state.last_error,
        "last_event": {"time": last_event.time, "kind": last_event.kind, "message": last_event.message}
        if last_event else None,
    }


def _cash_now(session: Session, book: str, position, last) -> float | None:
    from .ledger.models import Balance

    if position is None:
        return last.cash if last else None
    balance = session.get(Balance, (book, split_symbol(position.symbol)[1]))
    return balance.free if balance is not None else (last.cash if last else None)


def _fee_balances(session: Session, book: str, position) -> dict[str, float]:
    from .feebalance import third_currency_rows

    if position is None:
        return {}
    base, quote = split_symbol(position.symbol)
    return {row.currency: row.total for row in third_currency_rows(session, book, base, quote)}


def _protection(session: Session, book: str, state, position) -> dict:
    """Which protection the position has (trader.protection_status.describe): a stop, or a
    stop and take-profit OCO list, resting on the exchange (levels and orders), the levels
    checked by the daemon, or none; with the one sentence every view shows."""
    from .ledger.models import StrategyVersion
    from .protection_status import describe

    version = session.get(StrategyVersion, state.strategy_version) if state.strategy_version else None
    risk = ((version.settings or {}).get("risk") or {}) if version else {}
    qty, entry = (position.qty, position.entry_price) if position else (0.0, 0.0)
    return describe(session, book, qty, entry, risk, state.mode)


def _pnl(session: Session, book: str, position, last) -> dict | None:
    """Realised, unrealised (marked at the last close) and fees, from the book's fills."""
    from .trades import pnl

    if position is None:
        return None
    return pnl(store.fills_of(session, book), split_symbol(position.symbol)[0], position.qty,
               last.price if last else None)


def health(session: Session, book: str, timeframe_seconds: int, now: datetime | None = None,
           settle_seconds: float = 0.0) -> tuple[bool, str]:
    """Healthy while the last tick is recent (within two candles plus the settle delay) and
    the daemon is not halted."""
    now = now or datetime.now(timezone.utc)
    state = session.get(DaemonState, book)
    if state is None:
        return False, "no tick yet"
    if state.state == TradingState.HALTED:
        return False, f"halted: {state.reason}"
    # why the ticks are not coming, when the daemon knows (an unreachable exchange, say)
    why = f"; last error: {state.last_error}" if state.last_error else ""
    if state.last_tick_at is None:
        return False, "no tick yet" + why
    allowed = timedelta(seconds=2 * timeframe_seconds + settle_seconds + 60)
    age = now - state.last_tick_at
    if age > allowed:
        return False, f"last tick {int(age.total_seconds())} s ago (allowed {int(allowed.total_seconds())} s)" + why
    return True, f"last tick {int(age.total_seconds())} s ago"
