"""The bar-by-bar simulation, compiled with numba.

One loop holds the whole fill model; the daemon's paper broker applies the same rules
(see `trader/backtest/__init__.py` for the conventions):

* the exposure wanted after bar t closes is traded at bar t+1's open, and only when it
  differs from the last exposure acted on (so a stop-out is not re-entered until the
  strategy changes its mind);
* a buy spends `target * stake * equity` including its fee, never more than the cash;
  a sell of the whole position closes the trade;
* market fills (signal orders, stop-loss) pay slippage; take-profit is a resting limit
  order and does not; every fill pays `fee` on its notional;
* stop-loss and take-profit rest from the bar of entry on: a bar that opens beyond a level
  fills at its open; otherwise a bar whose low reaches the stop fills at the stop, and one
  whose high reaches the take-profit fills there; a bar that reaches both is read as the
  stop first (the pessimistic reading: the intrabar order is unknown).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SIGNAL, STOP_LOSS, TAKE_PROFIT = 0, 1, 2
BUY, SELL = 1.0, -1.0
FILL_FIELDS = ("bar", "side", "qty", "price", "fee", "reason")


@njit(cache=True, nogil=True)
def simulate(open_, high, low, close, target, stake, fee, slippage, stop_loss, take_profit,
             cash0, equity_out, fills_out):
    """Run the fill model over all bars.

    `stop_loss`/`take_profit` <= 0 disable them. Writes the equity after each bar's close
    into `equity_out` and, when `fills_out` has rows, one row per fill (FILL_FIELDS).
    Returns (fills, trades, wins, gross_profit, gross_loss, bars_in_market).
    """
    n = close.shape[0]
    record = fills_out.shape[0] > 0
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
        if t > 0:
            want = target[t - 1]
            if want != acted:
                acted = want
                px = open_[t]
                current = qty * px
                desired = want * stake * (cash + current)
                if want <= 0.0 or desired < current:
                    sell = qty if want <= 0.0 else (current - desired) / px
                    if sell > 0.0:
                        fill = px * (1.0 - slippage)
                        paid = sell * fill * fee
                        cash += sell * fill - paid
                        qty -= sell
                        if want <= 0.0:
                            qty = 0.0
                        if record:
                            fills_out[n_fills, 0] = t
                            fills_out[n_fills, 1] = SELL
                            fills_out[n_fills, 2] = sell
                            fills_out[n_fills, 3] = fill
                            fills_out[n_fills, 4] = paid
                            fills_out[n_fills, 5] = SIGNAL
                        n_fills += 1
                        if qty <= 0.0:
                            pnl = cash - trade_cash
                            trades += 1
                            if pnl > 0.0:
                                wins += 1
                                gross_profit += pnl
                            else:
                                gross_loss -= pnl
                else:
                    budget = min(desired - current, cash)
                    if budget > 0.0:
                        fill = px * (1.0 + slippage)
                        bought = budget / (fill * (1.0 + fee))
                        if qty <= 0.0:
                            trade_cash = cash
                            entry = fill
                        else:
                            entry = (entry * qty + fill * bought) / (qty + bought)
                        qty += bought
                        cash -= budget  # exactly the budget: the fee is inside it
                        if record:
                            fills_out[n_fills, 0] = t
                            fills_out[n_fills, 1] = BUY
                            fills_out[n_fills, 2] = bought
                            fills_out[n_fills, 3] = fill
                            fills_out[n_fills, 4] = budget - bought * fill
                            fills_out[n_fills, 5] = SIGNAL
                        n_fills += 1
        if qty > 0.0:
            held = True
            if stop_loss > 0.0 or take_profit > 0.0:
                stop_px = entry * (1.0 - stop_loss) if stop_loss > 0.0 else -math.inf
                limit_px = entry * (1.0 + take_profit) if take_profit > 0.0 else math.inf
                o = open_[t]
                exit_px = 0.0
                reason = -1
                if o <= stop_px:
                    exit_px = o * (1.0 - slippage)
                    reason = STOP_LOSS
                elif o >= limit_px:
                    exit_px = o
                    reason = TAKE_PROFIT
                elif low[t] <= stop_px:
                    exit_px = stop_px * (1.0 - slippage)
                    reason = STOP_LOSS
                elif high[t] >= limit_px:
                    exit_px = limit_px
                    reason = TAKE_PROFIT
                if reason >= 0:
                    paid = qty * exit_px * fee
                    cash += qty * exit_px - paid
                    if record:
                        fills_out[n_fills, 0] = t
                        fills_out[n_fills, 1] = SELL
                        fills_out[n_fills, 2] = qty
                        fills_out[n_fills, 3] = exit_px
                        fills_out[n_fills, 4] = paid
                        fills_out[n_fills, 5] = reason
                    n_fills += 1
                    qty = 0.0
                    pnl = cash - trade_cash
                    trades += 1
                    if pnl > 0.0:
                        wins += 1
                        gross_profit += pnl
                    else:
                        gross_loss -= pnl
        if held:
            bars_in += 1
        equity_out[t] = cash + qty * close[t]
    return n_fills, trades, wins, gross_profit, gross_loss, bars_in


@njit(cache=True, nogil=True)
def equity_stats(equity, cash0, bars_per_year):
    """(total_return, sharpe, sortino, max_drawdown) of an equity curve, in one pass.

    Returns are simple per-bar returns from bar 1 on; Sharpe = mean / sample std and
    Sortino = mean / downside deviation (target 0, over all bars), both times
    sqrt(bars_per_year); the risk-free rate is taken as 0. Max drawdown is the largest
    fall from a running peak (starting capital included), as a positive fraction.
    """
    n = equity.shape[0]
    peak = cash0
    max_dd = 0.0
    mean = 0.0
    m2 = 0.0  # Welford's running sum of squared deviations: stable for tiny returns
    down_sq = 0.0
    count = 0
    for t in range(n):
        e = equity[t]
        if e > peak:
            peak = e
        dd = 1.0 - e / peak
        if dd > max_dd:
            max_dd = dd
        if t > 0:
            r = e / equity[t - 1] - 1.0
            count += 1
            delta = r - mean
            mean += delta / count
            m2 += delta * (r - mean)
            if r < 0.0:
                down_sq += r * r
    final = equity[n - 1] if n > 0 else cash0
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
