"""Run a strategy over history: one backtest, or many variants of it in one call."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from strategies import indicators

from ..config import StrategyConfig
from ..timeframes import bars_per_year, timeframe_seconds
from . import loop, rules
from .result import BacktestResult, Fills, Metrics

# A one-off run (the `trader backtest` command) interprets the loop up to this many bars:
# importing numba and loading its cached kernels takes 0.5-1 s, the interpreted loop about
# 2 us a bar. Library calls and sweeps always run compiled.
ONE_OFF_INTERPRETED_BARS = 150_000
# Bars x variants of exposures a sweep holds at once (float64: 2 MB, one buffer reused, still
# in cache when the kernel reads it). The kernel runs in the calling thread: handing chunks to
# a second thread was slower on a loaded 2-core machine (its wake-ups cost more than it
# saved); the kernel holds no GIL, so callers may.
_CHUNK_CELLS = 262_144


class _Prices:
    """The frame's price columns as contiguous float64 arrays, converted once."""

    def __init__(self, ohlcv: pd.DataFrame, timeframe: str):
        if len(ohlcv) == 0:
            raise ValueError("no bars to backtest")
        self.open = np.ascontiguousarray(ohlcv["open"].to_numpy(dtype=np.float64))
        self.high = np.ascontiguousarray(ohlcv["high"].to_numpy(dtype=np.float64))
        self.low = np.ascontiguousarray(ohlcv["low"].to_numpy(dtype=np.float64))
        self.close = np.ascontiguousarray(ohlcv["close"].to_numpy(dtype=np.float64))
        self.n = len(self.close)
        bar = timeframe_seconds(timeframe)
        index = ohlcv.index
        if isinstance(index, pd.DatetimeIndex) and self.n > 1:
            # the time the bars cover: first open to last close, gaps included
            self.span = (index[-1] - index[0]).total_seconds() + bar
        else:
            self.span = float(self.n * bar)
        self.bars_per_year = bars_per_year(timeframe)


def _simulate(prices: _Prices, config: StrategyConfig, target: np.ndarray, equity: np.ndarray,
              fills: np.ndarray, compiled: bool = True) -> tuple[Metrics, tuple]:
    risk = config.risk
    settings = (risk.stake_fraction, risk.fee, risk.slippage, risk.stop_loss or 0.0, risk.take_profit or 0.0,
                config.capital)
    if compiled:
        from . import kernel

        counts = kernel.simulate(prices.open, prices.high, prices.low, prices.close, target, *settings, equity, fills)
        stats = kernel.equity_stats(equity, config.capital, prices.bars_per_year)
    else:  # Python floats (lists), not numpy scalars: the compiled loop's arithmetic
        counts = loop.simulate(prices.open.tolist(), prices.high.tolist(), prices.low.tolist(),
                               prices.close.tolist(), target.tolist(), *settings, equity, fills)
        stats = loop.equity_stats(equity.tolist(), config.capital, prices.bars_per_year)
    metrics = Metrics.from_run(stats, counts, equity[-1], prices.n, prices.span)
    return metrics, counts


def run_backtest(ohlcv: pd.DataFrame, config: StrategyConfig, one_off: bool = False) -> BacktestResult:
    """Backtest `config` over the bars of `ohlcv` (a frame from `trader.ohlcv.load_ohlcv`).

    `one_off`: the process runs this one backtest (a command), so up to
    ONE_OFF_INTERPRETED_BARS bars are simulated without loading numba (the same bits)."""
    prices = _Prices(ohlcv, config.timeframe)
    target = config.strategy_def().exposure(ohlcv, config.params)
    equity = np.empty(prices.n)
    fills = np.empty((2 * prices.n + 1, len(loop.FILL_FIELDS)))
    compiled = not one_off or prices.n > ONE_OFF_INTERPRETED_BARS
    metrics, counts = _simulate(prices, config, target, equity, fills, compiled)
    index = ohlcv.index
    rows = fills[: counts[0]]
    # whole columns at once; Fill objects (a Timestamp each) only for fills looked at one by one
    return BacktestResult(
        version=config.version,
        metrics=metrics,
        equity=pd.Series(equity, index=index, name="equity"),
        target=target,
        fills=Fills(index[rows[:, 0].astype(np.int64)], rows[:, 1].astype(np.int64), rows[:, 2].copy(),
                    rows[:, 3].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64),
                    rules.SIDE_NAMES, rules.REASON_NAMES),
    )


def sweep(
    ohlcv: pd.DataFrame,
    base: StrategyConfig,
    variants: Sequence[Mapping[str, Any] | StrategyConfig],
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Evaluate many variants of one strategy on the same bars in one call.

    Each variant is either a mapping of changes to `base` ({"fast": 12}) or a complete
    config of the same strategy, market and timeframe. Returns one row per variant, in
    order: its strategy version, the changed values, and the metrics. Indicators shared
    between variants (the same window on the same column) are computed once.
    """
    prices = _Prices(ohlcv, base.timeframe)
    configs, changed = [], []
    for i, variant in enumerate(variants):
        if isinstance(variant, StrategyConfig):
            _same_market(i, variant, base)
            configs.append(variant)
            changed.append({})
        else:
            changed.append(dict(variant))
            configs.append(base.with_values(changed[-1]))
    counts, stats = _run_many(ohlcv, prices, base, configs, None, progress)
    rows = []
    for config, changes, c, s in zip(configs, changed, counts.tolist(), stats.tolist()):
        run_counts = (int(c[0]), int(c[1]), int(c[2]), c[3], c[4], int(c[5]))
        metrics = Metrics.from_run((s[0], s[1], s[2], s[3]), run_counts, s[4], prices.n, prices.span)
        rows.append({"version": config.version, **changes, **metrics.to_dict()})
    return pd.DataFrame(rows)


def equity_curves(
    ohlcv: pd.DataFrame,
    base: StrategyConfig,
    variants: Sequence[StrategyConfig],
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The equity after every bar's close of each variant (one row each), from one run over
    all the bars: what walk-forward scoring slices into folds without restarting a position
    at each fold. Indicators shared between variants are computed once."""
    prices = _Prices(ohlcv, base.timeframe)
    for i, config in enumerate(variants):
        _same_market(i, config, base)
    out = np.empty((len(variants), prices.n))
    _run_many(ohlcv, prices, base, list(variants), out, progress)
    return out


def _same_market(i: int, config: StrategyConfig, base: StrategyConfig) -> None:
    if (config.strategy, config.timeframe) != (base.strategy, base.timeframe):
        raise ValueError(f"variant {i} trades {config.strategy} on {config.timeframe}, "
                         f"not {base.strategy} on {base.timeframe}")


def _run_many(ohlcv: pd.DataFrame, prices: _Prices, base: StrategyConfig, configs: list[StrategyConfig],
              curves: np.ndarray | None, progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Every config's counts (K x 6) and stats (K x 5: equity_stats, final equity), curves kept
    in `curves` when given. A chunk's signals are computed first (sharing indicators), then
    one kernel call runs the chunk; each variant's arithmetic is the same as alone."""
    from . import kernel, rolling

    total, n = len(configs), prices.n
    counts, stats = np.empty((total, 6)), np.empty((total, 5))
    risk = [c.risk for c in configs]
    settings = [np.array(v, dtype=np.float64) for v in (
        [r.stake_fraction for r in risk], [r.fee for r in risk], [r.slippage for r in risk],
        [r.stop_loss or 0.0 for r in risk], [r.take_profit or 0.0 for r in risk], [c.capital for c in configs])]
    strategy = base.strategy_def()
    # whole groups of the kernel's LANES curves
    chunk = max(1, min(total, max(kernel.LANES, _CHUNK_CELLS // n // kernel.LANES * kernel.LANES)))
    buffer = np.empty((chunk, n))
    lanes = np.empty((n, kernel.LANES))  # reused: a fresh one per call would page-fault each time
    no_curves = np.empty((0, n))

    with indicators.memo():
        rolling.share_means(ohlcv, strategy, configs)
        for lo in range(0, total, chunk):
            hi = min(lo + chunk, total)
            targets = buffer[:hi - lo]
            for k in range(lo, hi):
                strategy.exposure(ohlcv, configs[k].params, out=targets[k - lo])
            kernel.simulate_many(prices.open, prices.high, prices.low, prices.close, targets,
                                 *(v[lo:hi] for v in settings), prices.bars_per_year, lanes,
                                 curves[lo:hi] if curves is not None else no_curves, counts[lo:hi], stats[lo:hi])
            for k in range(lo, hi) if progress is not None else ():
                progress(k + 1, total)
    return counts, stats
