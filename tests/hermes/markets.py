"""Synthetic markets with known answers, for the learning tests and benchmarks/bench_hermes.py.

- `random_walk`: a driftless log-normal walk (a martingale), where no parameter has an edge,
  so every promotion of a return or Sharpe claim is a false one;
- `planted_rsi`: a market that *obeys* an RSI mean-reversion rule. Its drift is +`drift` per
  bar while the rule rsi_reversion(period, `oversold`, exit_level) holds a position and
  -`down` while it is flat, so the oversold level the market follows is the best one to trade
  by construction: a lower level enters late or never, a higher one buys while prices still
  fall. `moving_rsi` switches the planted level half-way through.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from trader.goals import Goals
from trader.timeframes import timeframe_seconds

START = pd.Timestamp("2022-01-03 00:00", tz="UTC")  # a Monday: weeks line up with the calendar


def _frame(close: np.ndarray, rng: np.random.Generator, sigma: float, timeframe: str) -> pd.DataFrame:
    """Candles around a close path: open = previous close, wicks beyond both."""
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2, close.size)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2, close.size)))
    index = pd.date_range(START, periods=close.size, freq=pd.Timedelta(seconds=timeframe_seconds(timeframe)),
                          name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": np.ones(close.size)}, index=index)


def random_walk(n: int, seed: int, timeframe: str = "1h", sigma: float = 0.007,
                price: float = 20_000.0) -> pd.DataFrame:
    """A log-normal random walk with E[simple return] = 0 (BTC-like 0.7 % per hourly bar):
    no strategy has an edge on it, so any promotion is a false one."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(-sigma * sigma / 2, sigma, n)  # -σ²/2: a martingale in price, not in log price
    steps[0] = 0.0
    return _frame(price * np.exp(np.cumsum(steps)), rng, sigma, timeframe)


def planted_rsi(n: int, seed: int, *, oversold: float = 20.0, period: int = 14, exit_level: float = 55.0,
                drift: float = 0.002, down: float | None = None, sigma: float = 0.005, timeframe: str = "1h",
                price: float = 20_000.0) -> pd.DataFrame:
    """A market driven by the rule rsi_reversion(period, oversold, exit_level).

    Log return of bar t = +drift while the rule (evaluated on the closes up to t-1, with the
    library's Wilder RSI) is long, -down (default: drift) while it is flat, plus N(0, sigma)
    noise. The rule's own `oversold` is then the best level to trade; the effect's strength is
    drift / sigma per bar."""
    down = drift if down is None else down
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, n)
    close = np.empty(n)
    close[0] = price
    alpha = 1.0 / period
    gain = loss = 0.0
    seen, long = 0, False
    for t in range(1, n):
        mu = 0.0 if seen < period else (drift if long else -down)
        close[t] = close[t - 1] * math.exp(mu + noise[t])
        change = close[t] - close[t - 1]
        up, dn = max(change, 0.0), max(-change, 0.0)
        # the same recursion as strategies.indicators.rsi (ewm, adjust=False, seeded by the first change)
        gain, loss = (up, dn) if seen == 0 else ((1 - alpha) * gain + alpha * up, (1 - alpha) * loss + alpha * dn)
        seen += 1
        if seen >= period:
            rsi = 100.0 - 100.0 / (1.0 + gain / loss) if loss > 0 else (100.0 if gain > 0 else 50.0)
            if rsi > exit_level:  # leaving wins when both hold, as in indicators.latch
                long = False
            elif rsi < oversold:
                long = True
    return _frame(close, rng, sigma, timeframe)


def moving_rsi(n: int, seed: int, *, before: float = 20.0, after: float = 30.0, switch: float = 0.5,
               **kwargs: Any) -> pd.DataFrame:
    """A planted RSI market whose oversold level moves from `before` to `after` at `switch`
    of the way through: the first part from `planted_rsi(level=before)`, the rest from a
    second planted market rescaled to continue from the first one's last close."""
    cut = int(n * switch)
    first = planted_rsi(cut, seed, oversold=before, **kwargs)
    second = planted_rsi(n - cut + 1, seed + 10_000, oversold=after, **kwargs)
    scale = float(first["close"].iloc[-1]) / float(second["open"].iloc[1])
    rest = second.iloc[1:].copy()
    for column in ("open", "high", "low", "close"):
        rest[column] = rest[column] * scale
    rest.index = first.index[-1] + (first.index[1] - first.index[0]) * np.arange(1, len(rest) + 1)
    return pd.concat([first, rest])


PLANTED_STRATEGY = """\
name: planted-rsi
exchange: coinbase
symbol: BTC/USD
timeframe: 1h
capital: 10000
strategy: rsi_reversion
params:
  period: 14
  oversold: 30
  exit_level: 55
risk:
  stake_fraction: 0.95
  stop_loss: null
  take_profit: null
  fee: 0.001
  slippage: 0.0005
tunable:
  period:     {min: 5,  max: 30, step: 1}
  oversold:   {min: 10, max: 40, step: 1}
  exit_level: {min: 45, max: 80, step: 1}
"""


def lenient_goals(lookback_days: int, success: dict[str, float] | None = None) -> Goals:
    """Goals whose failure side never trips in a simulation (a drawdown of 95 %, no monthly
    floor): a failing verdict halts the daemon and stops proposals, which would end the
    experiment rather than test learning. Success goals default to the shipped ones."""
    data: dict[str, Any] = {"failure": {"thresholds": {"max_drawdown": 0.95}, "monthly_return_floor": None},
                            "review": {"lookback_days": lookback_days}}
    if success is not None:
        data["success"] = success
    return Goals.model_validate(data)
