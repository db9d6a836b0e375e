"""Observe: a book's results from the ledger, as the metrics the goals are written in.

The numbers come from the same code as the backtester's (`kernel.equity_stats`,
`Metrics.from_run`), applied to the equity points the daemon recorded every tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from trader.backtest import kernel
from trader.backtest.result import Metrics
from trader.ledger.models import EquityPoint, Fill, Order
from trader.trades import closed_trades, fee_in_quote
from trader.timeframes import bars_per_year, timeframe_seconds


@dataclass(frozen=True)
class Observation:
    metrics: dict[str, float | None]
    equity: pd.Series  # the book's equity per bar in the window
    trades: int
    fees_paid: float
    slippage_realised: float | None


def equity_series(session: Session, book: str, since: datetime | None = None,
                  until: datetime | None = None) -> pd.Series:
    query = select(EquityPoint.time, EquityPoint.equity).where(EquityPoint.book == book)
    if since is not None:
        query = query.where(EquityPoint.time >= since)
    if until is not None:
        query = query.where(EquityPoint.time <= until)
    rows = session.execute(query.order_by(EquityPoint.time)).all()
    index = pd.DatetimeIndex([r.time for r in rows], tz="UTC") if rows else pd.DatetimeIndex([], tz="UTC")
    return pd.Series([r.equity for r in rows], index=index, name=book, dtype=float)


def observe(session: Session, book: str, timeframe: str, base: str, since: datetime, until: datetime,
            modeled_slippage: float) -> Observation:
    equity = equity_series(session, book, since, until)
    before = session.execute(select(EquityPoint.equity).where(EquityPoint.book == book, EquityPoint.time < since)
                             .order_by(EquityPoint.time.desc()).limit(1)).scalar()
    start = float(before) if before is not None else (float(equity.iloc[0]) if len(equity) else 0.0)
    fills = list(session.scalars(select(Fill).where(Fill.book == book).order_by(Fill.time, Fill.id)))
    trades = [pnl for when, pnl in closed_trades(fills, base) if since <= when <= until]
    in_window = [f for f in fills if since <= f.time <= until]
    metrics = _metrics(equity, start, timeframe, trades)
    return Observation(
        metrics=metrics,
        equity=equity,
        trades=len(trades),
        fees_paid=float(sum(fee_in_quote(f, base) for f in in_window)),
        slippage_realised=_slippage(session, in_window, modeled_slippage),
    )


def _metrics(equity: pd.Series, start: float, timeframe: str, pnls: list[float]) -> dict[str, float | None]:
    if len(equity) < 2 or start <= 0:
        return {key: None for key in ("total_return", "cagr", "monthly_return", "sharpe", "sortino",
                                      "max_drawdown", "win_rate", "profit_factor", "exposure")} | {"trades": len(pnls)}
    values = np.ascontiguousarray(equity.to_numpy(dtype=float))
    stats = kernel.equity_stats(values, start, bars_per_year(timeframe))
    wins = [p for p in pnls if p > 0]
    losses = [-p for p in pnls if p <= 0]
    span = (equity.index[-1] - equity.index[0]).total_seconds() + timeframe_seconds(timeframe)
    m = Metrics.from_run(stats, (0, len(pnls), len(wins), sum(wins), sum(losses), 0), values[-1], len(values), span)
    out = m.to_dict()
    out.pop("exposure")  # the ledger knows positions, not bars-in-market; not a goal metric
    return out


def _slippage(session: Session, fills: list[Fill], modeled: float) -> float | None:
    """Average adverse slippage of market fills against the price they were decided on.

    An order records its modeled fill price (the next open moved by the modeled slippage);
    the reference price is that open, so a paper fill shows exactly the modeled slippage and
    a live fill shows what the market really cost."""
    weighted, total = 0.0, 0.0
    for f in fills:
        if f.reason == "take_profit":
            continue  # a limit order: no slippage by design
        order = session.get(Order, f.order_id)
        if order is None or not order.price:
            continue
        reference = order.price / (1 + modeled) if f.side == "buy" else order.price / (1 - modeled)
        adverse = (f.price - reference) / reference * (1 if f.side == "buy" else -1)
        notional = f.amount * f.price
        weighted += adverse * notional
        total += notional
    return weighted / total if total > 0 else None


def window(now: datetime, days: int) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now
