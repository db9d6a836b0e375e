"""A sweep's moving averages, all windows in one pass, against pandas' own: the same bits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies import indicators
from trader.backtest import rolling


def pandas_means(values: np.ndarray, windows: list[int]) -> list[np.ndarray]:
    series = pd.Series(values)
    return [series.rolling(w, min_periods=w).mean().to_numpy() for w in windows]


def batched(values: np.ndarray, windows: list[int]) -> np.ndarray:
    out = np.empty((len(windows), len(values)))
    rolling.rolling_means(values, np.array(windows, dtype=np.int64), out)
    return out


def test_real_closes_give_pandas_bits(btc):
    close = btc["close"].to_numpy(dtype=np.float64)
    windows = [2, 3, 5, 10, 20, 50, 60, 200, 240, len(close), len(close) + 5]
    for window, ours, theirs in zip(windows, batched(close, windows), pandas_means(close, windows)):
        assert ours.tobytes() == theirs.tobytes(), window


@pytest.mark.parametrize("seed", range(40))
def test_awkward_series_give_pandas_bits(seed):
    """Missing values, runs of equal values (pandas then returns the value itself), zeros,
    negative zeros, all-positive and all-negative stretches (clamped at 0 by pandas)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 2500))
    values = np.round(rng.normal(0, 1, n).cumsum(), int(rng.integers(0, 4)))
    values[rng.random(n) < rng.choice([0.0, 0.05, 0.5])] = np.nan
    values[rng.random(n) < rng.choice([0.0, 0.3])] = 0.0
    if seed % 3 == 1:
        values = np.abs(values)
    if seed % 3 == 2:
        values = -np.abs(values)
    values[rng.random(n) < 0.02] = -0.0
    windows = sorted({int(w) for w in rng.integers(2, 300, 6)})
    for window, ours, theirs in zip(windows, batched(values, windows), pandas_means(values, windows)):
        assert ours.tobytes() == theirs.tobytes(), window


def test_shared_means_are_what_the_signal_would_compute(btc):
    """`share_means` puts in the memo what `indicators.sma` returns for the same key, and the
    declared windows cover the signal's calls (none left to compute); infinities read as
    missing, as `indicators` reads them."""
    import strategies

    frame = btc.copy()
    frame.iloc[100, frame.columns.get_loc("close")] = np.inf
    strategy = strategies.get("ma_cross")

    class Config:  # what share_means reads of a config
        def __init__(self, fast, slow):
            self.params = strategy.params(fast=fast, slow=slow)

    configs = [Config(f, s) for f, s in ((5, 60), (10, 60), (10, 80))]
    computed = []
    real = indicators._rolling
    with indicators.memo():
        indicators._rolling = lambda *args: computed.append(args) or real(*args)
        try:
            rolling.share_means(frame, strategy, configs)
            close = indicators.column(frame, "close")
            shared = {w: indicators.sma(close, w) for w in (5, 10, 60, 80)}
        finally:
            indicators._rolling = real
    assert computed == []
    for window, mean in shared.items():
        assert mean.tobytes() == indicators.sma(frame["close"].to_numpy(), window).tobytes(), window
