"""What a backtest returns: metrics, fills and the equity curve."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd

from ..timeframes import SECONDS_PER_YEAR

METRIC_KEYS = (
    "total_return",
    "cagr",
    "monthly_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "final_equity",
)

SECONDS_PER_MONTH = SECONDS_PER_YEAR / 12


@dataclass(frozen=True)
class Metrics:
    """Performance of one run. Fractions, not percent.

    * total_return: final equity / starting capital - 1.
    * cagr and monthly_return: the compounded (geometric) average growth per 365-day year
      and per twelfth of it, over the time the bars cover.
    * sharpe, sortino: per-bar returns annualised with sqrt(bars per 365-day year), risk-free
      rate 0 (see kernel.equity_stats); sortino is None when no bar lost money.
    * max_drawdown: largest fall from a running equity peak, positive.
    * trades: closed round trips (flat -> position -> flat); a position still open at the
      end is marked to market in the equity but not counted.
    * win_rate: share of closed trades with a positive net result (fees included); None
      without trades. profit_factor: gross profit / gross loss of closed trades; None when
      there is no loss to divide by.
    * exposure: share of bars during which a position was held.
    """

    # None (null) where the value is undefined or beyond a float: never inf or NaN
    total_return: float | None
    cagr: float | None
    monthly_return: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    trades: int
    win_rate: float | None
    profit_factor: float | None
    exposure: float
    final_equity: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    @classmethod
    def from_run(
        cls,
        stats: tuple[float, float, float, float],
        counts: tuple[int, int, int, float, float, int],
        final_equity: float,
        bars: int,
        span_seconds: float,
    ) -> "Metrics":
        total_return, sharpe, sortino, max_dd = stats
        _, trades, wins, gross_profit, gross_loss, bars_in = counts
        growth = 1.0 + total_return
        years = span_seconds / SECONDS_PER_YEAR
        months = span_seconds / SECONDS_PER_MONTH
        return cls(
            total_return=_finite(total_return),
            cagr=_annualise(growth, years),
            monthly_return=_annualise(growth, months),
            sharpe=_finite(sharpe),
            sortino=_finite(sortino),
            max_drawdown=_finite(max_dd),
            trades=int(trades),
            win_rate=wins / trades if trades else None,
            profit_factor=_finite(gross_profit / gross_loss) if gross_loss > 0 else None,
            exposure=bars_in / bars if bars else 0.0,
            final_equity=_finite(final_equity),
        )


def _finite(value: float) -> float | None:
    """A number, or None (null in JSON) for what is undefined or beyond a float: never inf or NaN."""
    value = float(value)
    return value if math.isfinite(value) else None


def _annualise(growth: float, periods: float) -> float | None:
    if not math.isfinite(growth):
        return None
    if periods <= 0 or growth <= 0:
        return -1.0 if growth <= 0 else 0.0
    try:
        return _finite(growth ** (1.0 / periods) - 1.0)
    except OverflowError:  # a short, steep run: beyond any float, so undefined
        return None


@dataclass(frozen=True)
class Fill:
    time: pd.Timestamp
    side: str  # "buy" | "sell"
    qty: float
    price: float
    fee: float
    reason: str  # "signal" | "stop_loss" | "take_profit"


@dataclass(frozen=True)
class BacktestResult:
    version: str  # the strategy version that produced it
    metrics: Metrics
    equity: pd.Series  # after each bar's close, indexed by bar open time
    target: np.ndarray  # the strategy's exposure per bar
    fills: tuple[Fill, ...]

    def fills_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.fills], columns=[f.name for f in fields(Fill)])
