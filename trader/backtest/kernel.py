"""The bar-by-bar simulation (`loop`), compiled with numba.

The loop and the position rules it calls (`rules`, the domain's money rules) are plain
Python; this module compiles them, caches the result on disk, and adds the batched form a
sweep runs (`simulate_many`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import register_jitable

from .. import domain
from . import loop, rules
from .loop import FILL_FIELDS  # the layout of `fills_out`, for callers too

# Everything compiled into these kernels. numba stamps a cached function with its own file
# only, so `simulate` (this file) compiled with rules.py's functions inside would survive an
# edit or upgrade of rules.py and keep running the old rules.
_SOURCES = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (domain, rules, loop))
                          + Path(__file__).read_bytes()).hexdigest()

# the rules and the loop's helpers, callable from compiled code as they are (those modules
# stay free of numba for the daemon's sake, and for the interpreted one-off run)
for _rule in (domain.cash_change, domain.add_to_position, domain.reduce_position, rules.rebalance,
              rules.exit_hit, rules.close_out, loop._record, loop._tally, loop.drawdown_step,
              loop.returns_step, loop.stats_of):
    register_jitable(_rule)


class _KernelCache(FunctionCache):
    """numba's own cache, with the stamp of every source compiled into the kernels."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = IndexDataCacheFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                              source_stamp=(self._impl.locator.get_source_stamp(), _SOURCES))


def _jit(func=None, *, error_model="python"):
    if func is None:  # @_jit(error_model=...)
        return lambda f: _jit(f, error_model=error_model)
    dispatcher = njit(nogil=True, error_model=error_model)(func)
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


simulate = _jit(loop.simulate)
equity_stats = _jit(loop.equity_stats)


# curves whose statistics one pass computes side by side: a sweep's lanes buffer is (bars,
# LANES); a constant count lets LLVM run them as two 8-wide vectors with no remainder loop
LANES = 16
# the stride of the lanes' state in _equity_stats_lanes: a constant distance between its
# fields lets LLVM prove them apart and vectorise the loop over the lanes
_FIELD = 64


@_jit(error_model="numpy")
def _equity_stats_lanes(equity, cash0, bars_per_year, stats_out):
    """`loop.equity_stats` of each column of `equity` (bars x LANES, C order), in one pass
    over the bars that runs the lanes as vectors: one curve alone waits on each of its
    dependent divisions, and scalar divisions were most of a sweep's kernel time.

    The same IEEE operations per curve as `equity_stats`, in the same order, so the same
    bits. Branches are written as selects so that the loop vectorises; a new deepest
    drawdown (rare) takes its division in a second loop, only on a bar that has one. numpy's
    error model drops the zero checks, so a zero divisor `equity_stats` would refuse is
    counted and raised here. Writes stats_out[j]: the four, then the final equity."""
    n = equity.shape[0]
    f = _FIELD
    # lane j's peak, max drawdown, mean, squared deviations, squared losses, zero divisors,
    # and whether this bar is a new deepest drawdown
    s = np.zeros(7 * f)
    for j in range(LANES):
        s[j], s[f + j] = loop.drawdown_step(equity[0, j], cash0[j], 0.0)
    for t in range(1, n):
        count = float(t)
        now, before = equity[t], equity[t - 1]
        deeper_lanes = 0
        for j in range(LANES):
            e, peak = now[j], s[j]
            up = e > peak  # drawdown_step's tests, as selects
            deeper = (e < peak * (1.0 - s[f + j])) & (not up)
            s[6 * f + j] = 1.0 if deeper else 0.0
            deeper_lanes += 1 if deeper else 0
            s[j] = e if up else peak
            r = e / before[j] - 1.0  # returns_step's
            mean = s[2 * f + j]
            delta = r - mean
            mean = mean + delta / count
            s[2 * f + j] = mean
            s[3 * f + j] = s[3 * f + j] + delta * (r - mean)
            s[4 * f + j] = s[4 * f + j] + (r * r if r < 0.0 else 0.0)
            s[5 * f + j] = s[5 * f + j] + (1.0 if before[j] == 0.0 else 0.0)
        if deeper_lanes:
            for j in range(LANES):
                if s[6 * f + j] > 0.0:  # the peak did not move on a deeper bar
                    s[5 * f + j] += 1.0 if s[j] == 0.0 else 0.0
                    s[f + j] = 1.0 - now[j] / s[j]
    for j in range(LANES):
        if s[5 * f + j] > 0.0:
            raise ZeroDivisionError("division by zero")
        final = equity[n - 1, j]
        stats_out[j, 0], stats_out[j, 1], stats_out[j, 2], stats_out[j, 3] = loop.stats_of(
            final, cash0[j], n - 1, s[2 * f + j], s[3 * f + j], s[4 * f + j], s[f + j], bars_per_year)
        stats_out[j, 4] = final


@_jit
def simulate_many(open_, high, low, close, targets, stake, fee, slippage, stop_loss, take_profit, cash0,
                  bars_per_year, lanes, curves_out, counts_out, stats_out):
    """`simulate` + `equity_stats` of each row of `targets` (one variant each; the settings
    are arrays, one value per variant), in one call that holds no GIL: a sweep's chunk.

    `lanes` is scratch of (bars, LANES), reused. `curves_out` holds a row per variant to keep
    the equity curves, or none. Writes counts_out[k] (simulate's six counts) and stats_out[k]
    (equity_stats' four, then the final equity)."""
    if lanes.shape != (len(close), LANES):
        raise ValueError("lanes must be (bars, LANES)")
    no_fills = np.empty((0, len(FILL_FIELDS)))
    total = targets.shape[0]
    keep = curves_out.shape[0] >= total
    group_stats = np.empty((LANES, 5))
    group_cash = np.empty(LANES)
    for k0 in range(0, total, LANES):
        used = min(LANES, total - k0)
        for j in range(LANES):
            if j >= used:  # a constant curve in the unused lanes of the last group
                lanes[:, j] = 1.0
                group_cash[j] = 1.0
                continue
            k = k0 + j
            group_cash[j] = cash0[k]
            counts = simulate(open_, high, low, close, targets[k], stake[k], fee[k], slippage[k], stop_loss[k],
                              take_profit[k], cash0[k], lanes[:, j], no_fills)
            n_fills, trades, wins, gross_profit, gross_loss, bars_in = counts
            counts_out[k, 0], counts_out[k, 1], counts_out[k, 2] = n_fills, trades, wins
            counts_out[k, 3], counts_out[k, 4], counts_out[k, 5] = gross_profit, gross_loss, bars_in
            if keep:
                curves_out[k, :] = lanes[:, j]
        _equity_stats_lanes(lanes, group_cash, bars_per_year, group_stats)
        stats_out[k0:k0 + used] = group_stats[:used]
