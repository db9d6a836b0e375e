"""The bar-by-bar simulation and the equity statistics, as plain Python.

`kernel` compiles these very functions with numba (the loops of sweeps and library calls);
a one-off run of a few years of bars may run them as they are (`run.run_backtest(...,
one_off=True)`): loading numba and its cached kernels costs more than interpreting them.
Both give the same bits: numba keeps IEEE arithmetic (no fastmath), and the interpreted run
gets Python floats (lists), not numpy scalars.

The position rules themselves (sizing, costs, stops) live in `rules` and the domain, which
the daemon's risk engine calls too; this loop adds the timing: the exposure wanted after bar
t closes is traded at bar t+1's open, and only when it differs from the last exposure acted
on (so a stop-out is not re-entered until the strategy changes its mind); resting stops are
checked against every bar's range from the entry bar on; equity is marked at every close.
"""

from __future__ import annotations

import math

from ..domain import add_to_position, reduce_position
from .rules import BUY, NONE, SELL, SIGNAL, close_out, exit_hit, rebalance

FILL_FIELDS = ("bar", "side", "qty", "price", "fee", "reason")


def _record(fills_out, row, bar, side, qty, price, fee, reason):
    if len(fills_out) > 0:
        fills_out[row, 0] = bar
        fills_out[row, 1] = side
        fills_out[row, 2] = qty
        fills_out[row, 3] = price
        fills_out[row, 4] = fee
        fills_out[row, 5] = reason


def _tally(pnl, trades, wins, gross_profit, gross_loss):
    """Count one closed round trip."""
    if pnl > 0.0:
        return trades + 1, wins + 1, gross_profit + pnl, gross_loss
    return trades + 1, wins, gross_profit, gross_loss - pnl


def simulate(open_, high, low, close, target, stake, fee, slippage, stop_loss, take_profit,
             cash0, equity_out, fills_out):
    """Run the fill model over all bars.

    `stop_loss`/`take_profit` <= 0 disable them. Writes the equity after each bar's close
    into `equity_out` and, when `fills_out` has rows, one row per fill (FILL_FIELDS).
    Returns (fills, trades, wins, gross_profit, gross_loss, bars_in_market).
    """
    n = len(close)
    cash = cash0
    qty = 0.0
    entry = 0.0
    acted = 0.0
    trade_cash = 0.0
    n_fills = 0
    trades = 0
    wins = 0
    gross_profit = 0.0
    gross_loss = 0.0
    bars_in = 0
    for t in range(n):
        held = qty > 0.0
        if t > 0 and target[t - 1] != acted:
            acted = target[t - 1]
            side, amount, fill, paid, change = rebalance(acted, qty, cash, open_[t], stake, fee, slippage)
            if side == BUY:
                if qty <= 0.0:
                    trade_cash = cash
                qty, entry = add_to_position(qty, entry, amount, fill)
            elif side == SELL:
                qty = 0.0 if acted <= 0.0 else reduce_position(qty, amount)
            if side != NONE:
                cash += change
                _record(fills_out, n_fills, t, side, amount, fill, paid, SIGNAL)
                n_fills += 1
                if side == SELL and qty <= 0.0:
                    trades, wins, gross_profit, gross_loss = _tally(
                        cash - trade_cash, trades, wins, gross_profit, gross_loss)
        if qty > 0.0:
            held = True
            if stop_loss > 0.0 or take_profit > 0.0:
                reason, price = exit_hit(entry, open_[t], high[t], low[t], stop_loss, take_profit, slippage)
                if reason >= 0:
                    paid, change = close_out(qty, price, fee)
                    cash += change
                    _record(fills_out, n_fills, t, SELL, qty, price, paid, reason)
                    n_fills += 1
                    qty = 0.0
                    trades, wins, gross_profit, gross_loss = _tally(
                        cash - trade_cash, trades, wins, gross_profit, gross_loss)
        if held:
            bars_in += 1
        equity_out[t] = cash + qty * close[t]
    return n_fills, trades, wins, gross_profit, gross_loss, bars_in


def equity_stats(equity, cash0, bars_per_year):
    """(total_return, sharpe, sortino, max_drawdown) of an equity curve, in one pass.

    Returns are simple per-bar returns from bar 1 on; Sharpe = mean / sample std and
    Sortino = mean / downside deviation (target 0, over all bars), both times
    sqrt(bars_per_year); the risk-free rate is taken as 0. Max drawdown is the largest
    fall from a running peak (starting capital included), as a positive fraction.
    """
    n = len(equity)
    peak = cash0
    max_dd = 0.0
    mean = 0.0
    m2 = 0.0  # Welford's running sum of squared deviations: stable for tiny returns
    down_sq = 0.0
    count = 0
    for t in range(n):
        e = equity[t]
        peak, max_dd = drawdown_step(e, peak, max_dd)
        if t > 0:
            count += 1
            mean, m2, down_sq = returns_step(e / equity[t - 1] - 1.0, count, mean, m2, down_sq)
    return stats_of(equity[n - 1] if n > 0 else cash0, cash0, count, mean, m2, down_sq, max_dd, bars_per_year)


# equity_stats' steps, shared with the kernel's form that runs several curves at once


def drawdown_step(e, peak, max_dd):
    """The running peak and largest drawdown once equity `e` is seen."""
    if e > peak:
        return e, max_dd
    if e < peak * (1.0 - max_dd):
        return peak, 1.0 - e / peak
    return peak, max_dd


def returns_step(r, count, mean, m2, down_sq):
    """The running mean, squared deviations (Welford) and squared losses once the
    `count`-th return `r` is seen."""
    delta = r - mean
    mean += delta / count
    m2 += delta * (r - mean)
    if r < 0.0:
        down_sq += r * r
    return mean, m2, down_sq


def stats_of(final, cash0, count, mean, m2, down_sq, max_dd, bars_per_year):
    total_return = final / cash0 - 1.0
    sharpe = 0.0
    sortino = 0.0
    if count > 1:
        var = m2 / (count - 1)
        scale = math.sqrt(bars_per_year)
        if var > 1e-30 and mean != 0.0:
            sharpe = mean / math.sqrt(var) * scale
        if mean != 0.0:
            down = math.sqrt(down_sq / count)
            sortino = mean / down * scale if down > 0.0 else math.inf
    return total_return, sharpe, sortino, max_dd
