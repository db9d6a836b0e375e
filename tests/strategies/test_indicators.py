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


def test_a_column_is_the_array_to_numpy_gives_and_read_only():
    """`column` reads pandas' array without building a Series: the same values, as
    `to_numpy` gives them, and never a way for a signal to write into the frame."""
    frame = pd.DataFrame({"open": [1.0, 2.0, 3.0], "close": [4.0, 5.0, 6.0], "volume": [1, 2, 3]}).iloc[1:]
    close = ind.column(frame, "close")
    assert np.array_equal(close, frame["close"].to_numpy()) and close.dtype == np.float64
    assert not close.flags.writeable
    volume = ind.column(frame, "volume")  # integers: converted as the public path does
    assert volume.dtype == np.float64 and volume.tolist() == [2.0, 3.0]
    twice = pd.DataFrame([[1.0, 2.0]], columns=["close", "close"])
    assert np.array_equal(ind.column(twice, "close"), twice["close"].to_numpy())  # the public path's answer
