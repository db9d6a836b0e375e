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


simulate = _jit(loop.simulate)
equity_stats = _jit(loop.equity_stats)


# curves whose statistics one loop computes together (see _equity_stats_lanes)
LANES = 4


@_jit
def _equity_stats_lanes(equity, rows, cash0, bars_per_year, stats_out):
    """`loop.equity_stats` of the given rows of `equity` (at most LANES) in one pass over
    the bars: one curve alone waits on each of its dependent divisions, several interleave.
    The same steps per curve, so the same bits. Writes stats_out[k]: the four, then the
    final equity."""
    lanes = len(rows)
    peak, max_dd = np.empty(LANES), np.zeros(LANES)
    mean, m2, down_sq = np.zeros(LANES), np.zeros(LANES), np.zeros(LANES)
    for j in range(lanes):
        peak[j] = cash0[j]
    n = equity.shape[1]
    count = 0
    for t in range(n):
        if t > 0:
            count += 1
        for j in range(lanes):
            e = equity[rows[j], t]
            peak[j], max_dd[j] = loop.drawdown_step(e, peak[j], max_dd[j])
            if t > 0:
                mean[j], m2[j], down_sq[j] = loop.returns_step(e / equity[rows[j], t - 1] - 1.0, count,
                                                               mean[j], m2[j], down_sq[j])
    for j in range(lanes):
        final = equity[rows[j], n - 1]
        stats_out[j, 0], stats_out[j, 1], stats_out[j, 2], stats_out[j, 3] = loop.stats_of(
            final, cash0[j], count, mean[j], m2[j], down_sq[j], max_dd[j], bars_per_year)
        stats_out[j, 4] = final


@_jit
def simulate_many(open_, high, low, close, targets, stake, fee, slippage, stop_loss, take_profit, cash0,
                  bars_per_year, equity_out, counts_out, stats_out):
    """`simulate` + `equity_stats` of each row of `targets` (one variant each; the settings
    are arrays, one value per variant), in one call that holds no GIL: a sweep's chunk.

    `equity_out` holds a row per variant (the curves are kept) or LANES rows (reused).
    Writes counts_out[k] (simulate's six counts) and stats_out[k] (equity_stats' four, then
    the final equity)."""
    no_fills = np.empty((0, len(FILL_FIELDS)))
    total = targets.shape[0]
    keep = equity_out.shape[0] >= total
    for k0 in range(0, total, LANES):
        k1 = min(k0 + LANES, total)
        rows = np.arange(k0, k1) if keep else np.arange(k1 - k0)
        for k in range(k0, k1):
            counts = simulate(open_, high, low, close, targets[k], stake[k], fee[k], slippage[k], stop_loss[k],
                              take_profit[k], cash0[k], equity_out[rows[k - k0]], no_fills)
            n_fills, trades, wins, gross_profit, gross_loss, bars_in = counts
            counts_out[k, 0], counts_out[k, 1], counts_out[k, 2] = n_fills, trades, wins
            counts_out[k, 3], counts_out[k, 4], counts_out[k, 5] = gross_profit, gross_loss, bars_in
        _equity_stats_lanes(equity_out, rows, cash0[k0:k1], bars_per_year, stats_out[k0:k1])
