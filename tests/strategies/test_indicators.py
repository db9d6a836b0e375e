"""The rolling indicators call pandas' own kernels directly (a tick pays no pandas
overhead): their results must stay bit for bit those of `Series.rolling`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies import indicators as ind


def series(rng, n, kind):
    x = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    if kind == "gaps" and n:
        holes = rng.integers(0, n, size=max(1, n // 20))
        x[holes] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -5.0], size=len(holes))
    elif kind == "flat":
        x[: n // 2] = 123.25  # a run of equal values (pandas has a special case for it)
    elif kind == "signs":
        x = rng.normal(0, 1, n)
    return x


@pytest.mark.parametrize("kind", ["walk", "gaps", "flat", "signs"])
@pytest.mark.parametrize("name, pandas_name", [("sma", "mean"), ("rolling_max", "max"), ("rolling_min", "min")])
def test_rolling_indicators_give_pandas_bits(kind, name, pandas_name):
    rng = np.random.default_rng(7)
    for n, window in [(0, 3), (1, 2), (5, 9), (500, 2), (500, 50), (700, 500), (2000, 20)]:
        x = series(rng, n, kind)
        got = getattr(ind, name)(x, window)
        want = getattr(pd.Series(x).rolling(window, min_periods=window), pandas_name)().to_numpy()
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got.view(np.int64), want.view(np.int64)), (n, window)


def test_without_pandas_private_kernels_the_public_path_gives_the_same_bits(monkeypatch):
    rng = np.random.default_rng(3)
    x = series(rng, 600, "gaps")
    fast = [ind.sma(x, 20), ind.rolling_max(x, 20), ind.rolling_min(x, 20)]
    monkeypatch.setattr(ind, "_roll", None)  # a pandas that moved its private module
    slow = [ind.sma(x, 20), ind.rolling_max(x, 20), ind.rolling_min(x, 20)]
    for a, b in zip(fast, slow):
        assert np.array_equal(a.view(np.int64), b.view(np.int64))
