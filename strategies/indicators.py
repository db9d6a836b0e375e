"""Causal indicators on numpy arrays: the value at index t uses inputs up to t only.

Windows are recomputed often in parameter sweeps, so each result may be memoised for the
duration of a `memo()` block keyed on the input array's identity; outside such a block
nothing is cached and every call computes afresh.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# pandas' own rolling kernels, called without Series.rolling's per-call cost; loaded at first
# use (with pandas), so importing the strategy library stays cheap. None: a pandas that moved
# them (a private module), so the public path, same bits.
_UNLOADED = object()
_roll = _UNLOADED


def _kernels():
    global _roll
    if _roll is _UNLOADED:
        try:
            from pandas._libs.window import aggregations as _roll
        except ImportError:
            _roll = None
    return _roll

_memo: contextvars.ContextVar[dict | None] = contextvars.ContextVar("indicator_memo", default=None)


@contextlib.contextmanager
def memo() -> Iterator[None]:
    """Share indicator results between calls inside this block (used by sweeps).

    Arrays used as keys are kept alive by the cache itself, so an `id()` cannot be reused
    by a different array while the block runs.
    """
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _cached(name: str, values: np.ndarray, arg: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
    cache = _memo.get()
    if cache is None:
        return compute()
    key = (name, id(values), arg)
    hit = cache.get(key)
    if hit is None:
        hit = (values, compute())
        cache[key] = hit
    return hit[1]


def share(name: str, values: np.ndarray, arg: int, result: np.ndarray) -> None:
    """Give the active memo block a result computed elsewhere (a sweep computes the moving
    averages of all its variants in one pass): a later `name(values, arg)` call returns it.
    It must be exactly what that call computes. Outside a memo block, nothing is kept."""
    cache = _memo.get()
    if cache is not None:
        cache[(name, id(values), arg)] = (values, result)


def column(ohlcv: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 numpy, the same array object for the same frame in a memo block."""
    cache = _memo.get()
    if cache is None:
        return _column(ohlcv, name)
    key = ("column", id(ohlcv), name)
    hit = cache.get(key)
    if hit is None:
        hit = (ohlcv, _column(ohlcv, name))
        cache[key] = hit
    return hit[1]


def _column(ohlcv: pd.DataFrame, name: str) -> np.ndarray:
    # a tick reads a column of a 500-bar frame: `frame[name]` builds a Series (about 10 us,
    # a fifth of a tick's strategy); pandas' own column accessor returns the very array
    # `to_numpy` would for a float64 column. Anything else (another dtype, a duplicated name,
    # a pandas without the accessor) takes the public path.
    try:
        loc = ohlcv.columns.get_loc(name)
        if isinstance(loc, int):
            array = ohlcv._get_column_array(loc)
            if isinstance(array, np.ndarray) and array.dtype == np.float64:
                array = array.view()
                array.flags.writeable = False  # as to_numpy's: a signal cannot write into the frame
                return array
    except (AttributeError, TypeError):
        pass
    return ohlcv[name].to_numpy(dtype=np.float64)


def _rolling(name: str, values: np.ndarray, window: int) -> np.ndarray:
    """`pd.Series(values).rolling(window, min_periods=window).<name>()` without its
    per-call overhead (about 50 us; the daemon pays it every tick): pandas' own Cython
    kernel on the inputs pandas would give it, so the very same bits (see
    tests/strategies/test_indicators.py)."""
    kernel = getattr(_kernels(), f"roll_{name}", None)
    if kernel is None:
        import pandas as pd

        return getattr(pd.Series(values, dtype=np.float64).rolling(window, min_periods=window), name)().to_numpy()
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return x.copy()
    if np.isinf(x).any():
        x = np.where(np.isinf(x), np.nan, x)  # pandas reads inf as missing in rolling windows
    start, end = _bounds(len(x), window)
    return kernel(x, start, end, window)


_BOUNDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Each output's window [start, end), as Series.rolling gives them: kept per shape, since a
    daemon asks for the same ones every tick (read-only, so sharing them is safe)."""
    hit = _BOUNDS.get((n, window))
    if hit is None:
        end = np.arange(1, n + 1, dtype=np.int64)
        start = end - window
        np.maximum(start, 0, out=start)
        start.flags.writeable = end.flags.writeable = False
        if len(_BOUNDS) >= 64:  # sweeps over many lengths: keep it small
            _BOUNDS.clear()
        hit = _BOUNDS[(n, window)] = (start, end)
    return hit


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; NaN for the first window-1 bars."""

    def compute() -> np.ndarray:
        # pandas' rolling mean is causal and numerically stable (no drifting cumulative sum)
        return _rolling("mean", values, window)

    return _cached("sma", values, window, compute)


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (span + 1), seeded at the first value."""

    def compute() -> np.ndarray:
        import pandas as pd

        out = pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy()
        out[: span - 1] = np.nan
        return out

    return _cached("ema", values, span, compute)


def rsi(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI (smoothing alpha = 1/period); NaN until `period` changes have been seen."""

    def compute() -> np.ndarray:
        import pandas as pd

        delta = np.diff(values, prepend=np.nan)
        gain = pd.Series(np.where(delta > 0, delta, 0.0))
        loss = pd.Series(np.where(delta < 0, -delta, 0.0))
        gain.iloc[0] = np.nan
        loss.iloc[0] = np.nan
        avg_gain = gain.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean().to_numpy()
        avg_loss = loss.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        # no losses at all in the window: RSI is 100 by definition
        out = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, out)
        out = np.where((avg_loss == 0) & (avg_gain == 0), 50.0, out)
        out[np.isnan(avg_gain)] = np.nan
        return out

    return _cached("rsi", values, period, compute)


def rolling_max(values: np.ndarray, window: int) -> np.ndarray:
    """Highest value of the `window` bars up to and including t."""

    def compute() -> np.ndarray:
        return _rolling("max", values, window)

    return _cached("rolling_max", values, window, compute)


def rolling_min(values: np.ndarray, window: int) -> np.ndarray:
    """Lowest value of the `window` bars up to and including t."""

    def compute() -> np.ndarray:
        return _rolling("min", values, window)

    return _cached("rolling_min", values, window, compute)


def shift(values: np.ndarray, n: int = 1) -> np.ndarray:
    """Values moved n bars later (index t holds t-n), NaN in front: look at the past only."""
    out = np.empty_like(values, dtype=np.float64)
    out[:n] = np.nan
    out[n:] = values[:-n] if n else values
    return out


def latch(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    """1 from a bar where `enter` holds until a bar where `leave` holds, else 0.

    A state machine without a Python loop: mark entries 1 and exits 0, carry the last mark
    forward. When both hold on the same bar, leaving wins (the cautious reading).
    """
    import pandas as pd

    marks = np.full(len(enter), np.nan)
    marks[enter] = 1.0
    marks[leave] = 0.0
    return pd.Series(marks).ffill().fillna(0.0).to_numpy()
