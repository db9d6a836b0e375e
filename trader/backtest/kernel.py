"""The bar-by-bar simulation, compiled with numba.

The position rules themselves (sizing, costs, stops) live in `rules`, which the daemon's
risk engine calls too; this loop adds the timing: the exposure wanted after bar t closes is
traded at bar t+1's open, and only when it differs from the last exposure acted on (so a
stop-out is not re-entered until the strategy changes its mind); resting stops are checked
against every bar's range from the entry bar on; equity is marked at every close.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from numba import njit
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import register_jitable

from .. import domain
from . import rules
from .rules import BUY, NONE, SELL, SIGNAL

# Everything compiled into these kernels. numba stamps a cached function with its own file
# only, so `simulate` (this file) compiled with rules.py's functions inside would survive an
# edit or upgrade of rules.py and keep running the old rules.
_SOURCES = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (domain, rules))
                          + Path(__file__).read_bytes()).hexdigest()

# the domain's money and position rules, callable from compiled code as they are (the domain
# module itself stays free of numba for the daemon's sake)
for _rule in (domain.cash_change, domain.add_to_position, domain.reduce_position):
    register_jitable(_rule)


class _KernelCache(FunctionCache):
    """numba's own cache, with the stamp of every source compiled into the kernels."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = IndexDataCacheFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                              source_stamp=(self._impl.locator.get_source_stamp(), _SOURCES))


def _jit(func):
    dispatcher = njit(nogil=True)(func)
    try:
        dispatcher._cache = _KernelCache(func)  # what njit(cache=True) does, with the stamp above
    except RuntimeError as exc:  # "cannot cache function": no writable folder for numba's cache
        if "cannot cache" not in str(exc):
            raise
        _no_cache_warning()  # the kernels compile in each process instead (seconds, not an error)
    return dispatcher


_warned = []


def _no_cache_warning() -> None:
    if not _warned:
        _warned.append(True)
        import logging

        logging.getLogger("trader.backtest").warning(
            "numba cannot cache the backtest kernels (the package folder and the user cache folder are not "
            "writable); compiling them in each process instead: set NUMBA_CACHE_DIR to a writable folder")


# the shared position rules, compiled for this loop (the daemon runs them uncompiled)
rebalance, exit_hit, close_out, add_to_position, reduce_position = (
    _jit(f) for f in (rules.rebalance, rules.exit_hit, rules.close_out, domain.add_to_position,
                      domain.reduce_position))

FILL_FIELDS = ("bar", "side", "qty", "price", "fee", "reason")


@_jit
def _record(fills_out, row, bar, side, qty, price, fee, reason):
    if fills_out.shape[0] > 0:
        fills_out[row, 0] = bar
        fills_out[row, 1] = side
        fills_out[row, 2] = qty
        fills_out[row, 3] = price
        fills_out[row, 4] = fee
        fills_out[row, 5] = reason


@_jit
def _tally(pnl, trades, wins, gross_profit, gross_loss):
    """Count one closed round trip."""
    if pnl > 0.0:
        return trades + 1, wins + 1, gross_profit + pnl, gross_loss
    return trades + 1, wins, gross_profit, gross_loss - pnl


@_jit
def simulate(open_, high, low, close, target, stake, fee, slippage, stop_loss, take_profit,
             cash0, equity_out, fills_out):
    """Run the fill model over all bars.

    `stop_loss`/`take_profit` <= 0 disable them. Writes the equity after each bar's close
    into `equity_out` and, when `fills_out` has rows, one row per fill (FILL_FIELDS).
    Returns (fills, trades, wins, gross_profit, gross_loss, bars_in_market).
    """
    n = close.shape[0]
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


@_jit
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
        elif e < peak * (1.0 - max_dd):
            max_dd = 1.0 - e / peak
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
