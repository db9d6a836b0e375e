"""Run a strategy over history: one backtest, or many variants of it in one call."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from strategies import indicators

from ..config import StrategyConfig
from ..timeframes import bars_per_year, timeframe_seconds
from . import kernel, rules
from .result import BacktestResult, Fills, Metrics



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
              fills: np.ndarray) -> tuple[Metrics, tuple]:
    risk = config.risk
    counts = kernel.simulate(
        prices.open, prices.high, prices.low, prices.close, target,
        risk.stake_fraction, risk.fee, risk.slippage,
        risk.stop_loss or 0.0, risk.take_profit or 0.0,
        config.capital, equity, fills,
    )
    stats = kernel.equity_stats(equity, config.capital, prices.bars_per_year)
    metrics = Metrics.from_run(stats, counts, equity[-1], prices.n, prices.span)
    return metrics, counts


def run_backtest(ohlcv: pd.DataFrame, config: StrategyConfig) -> BacktestResult:
    """Backtest `config` over the bars of `ohlcv` (a frame from `trader.ohlcv.load_ohlcv`)."""
    prices = _Prices(ohlcv, config.timeframe)
    target = config.strategy_def().exposure(ohlcv, config.params)
    equity = np.empty(prices.n)
    fills = np.empty((2 * prices.n + 1, len(kernel.FILL_FIELDS)))
    metrics, counts = _simulate(prices, config, target, equity, fills)
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
    strategy = base.strategy_def()
    equity = np.empty(prices.n)
    no_fills = np.empty((0, len(kernel.FILL_FIELDS)))
    rows = []
    with indicators.memo():
        for i, variant in enumerate(variants):
            if isinstance(variant, StrategyConfig):
                config, changes = variant, {}
                if (config.strategy, config.timeframe) != (base.strategy, base.timeframe):
                    raise ValueError(f"variant {i} trades {config.strategy} on {config.timeframe}, "
                                     f"not {base.strategy} on {base.timeframe}")
            else:
                changes = dict(variant)
                config = base.with_values(changes)
            target = strategy.exposure(ohlcv, config.params)
            metrics, _ = _simulate(prices, config, target, equity, no_fills)
            rows.append({"version": config.version, **changes, **metrics.to_dict()})
            if progress is not None:
                progress(i + 1, len(variants))
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
    strategy = base.strategy_def()
    out = np.empty((len(variants), prices.n))
    no_fills = np.empty((0, len(kernel.FILL_FIELDS)))
    with indicators.memo():
        for i, config in enumerate(variants):
            if (config.strategy, config.timeframe) != (base.strategy, base.timeframe):
                raise ValueError(f"variant {i} trades {config.strategy} on {config.timeframe}, "
                                 f"not {base.strategy} on {base.timeframe}")
            target = strategy.exposure(ohlcv, config.params)
            _simulate(prices, config, target, out[i], no_fills)
            if progress is not None:
                progress(i + 1, len(variants))
    return out
