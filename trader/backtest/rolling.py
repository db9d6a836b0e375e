"""Simple moving averages of several windows over one column in one compiled pass: what a
sweep's variants of a moving-average strategy ask for (ma_cross: 20 windows for 100
variants).

The very arithmetic of pandas' `Series.rolling(w, min_periods=w).mean()` (its running Kahan
sums, separate compensations for what enters and what leaves the window, the counts of
negative values and of a run of equal values), so the same bits as
`strategies.indicators.sma` (tests/trader/backtest/test_rolling.py pins it against the
installed pandas). pandas runs one window at a time, each waiting on its own chain of
additions; here the windows' chains interleave."""

from __future__ import annotations

import math

import numpy as np

from .kernel import _jit


@_jit
def rolling_means(values, windows, out):
    """out[k] = the mean of the last windows[k] values at each index (NaN until that many
    are not NaN); every window >= 2. `values` must hold no infinities (pandas reads them as
    missing: the caller replaces them with NaN, as `indicators` does)."""
    n, m = len(values), len(windows)
    total, add_err, remove_err = np.zeros(m), np.zeros(m), np.zeros(m)
    count, negative = np.zeros(m, np.int64), np.zeros(m, np.int64)
    last = values[0] if n else np.nan
    run = 0  # equal values in a row, up to and including this one (the same for every window)
    for i in range(n):
        x = values[i]
        if x == x:
            run = run + 1 if x == last else 1
            last = x
        for k in range(m):
            w = windows[k]
            if i >= w:  # the value leaving the window: pandas removes before it adds
                old = values[i - w]
                if old == old:
                    count[k] -= 1
                    y = -old - remove_err[k]
                    t = total[k] + y
                    remove_err[k] = t - total[k] - y
                    total[k] = t
                    if math.copysign(1.0, old) < 0.0:
                        negative[k] -= 1
            if x == x:
                count[k] += 1
                y = x - add_err[k]
                t = total[k] + y
                add_err[k] = t - total[k] - y
                total[k] = t
                if math.copysign(1.0, x) < 0.0:
                    negative[k] += 1
            c = count[k]
            if c >= w:
                mean = total[k] / c
                if run >= c:  # a window of equal values is that value, without rounding noise
                    mean = last
                elif negative[k] == 0 and mean < 0.0:
                    mean = 0.0
                elif negative[k] == c and mean > 0.0:
                    mean = 0.0
                out[k, i] = mean
            else:
                out[k, i] = np.nan


def share_means(ohlcv, strategy, configs) -> None:
    """Compute together the simple moving averages the variants' strategy declares
    (`Strategy.indicators`) and hand them to the active `indicators.memo()` block, where the
    signals then find them. Nothing for a strategy that declares none."""
    from strategies import indicators

    if strategy.indicators is None:
        return
    wanted: dict[str, set[int]] = {}
    for config in configs:
        for name, column, window in strategy.indicators(config.params):
            if name == "sma" and window >= 2:
                wanted.setdefault(column, set()).add(int(window))
    for column, windows in wanted.items():
        if len(windows) < 2:  # one window: pandas' own kernel is as fast
            continue
        values = indicators.column(ohlcv, column)
        x = np.asarray(values, dtype=np.float64)
        if np.isinf(x).any():
            x = np.where(np.isinf(x), np.nan, x)
        ordered = np.array(sorted(windows), dtype=np.int64)
        out = np.empty((len(ordered), len(x)))
        rolling_means(x, ordered, out)
        for window, mean in zip(ordered.tolist(), out):
            indicators.share("sma", values, window, mean)
