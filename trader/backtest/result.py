"""What a backtest returns: metrics, fills and the equity curve."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

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
        # the fields in order (METRIC_KEYS); not dataclasses.asdict, which deep-copies each
        # number: a tenth of a 100-variant sweep
        return {key: getattr(self, key) for key in METRIC_KEYS}

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


class Fills(Sequence[Fill]):
    """A backtest's fills as columns (the kernel's output, converted in whole arrays): a
    `Fill` object is built only for the fills a caller looks at one by one. A year of
    minute bars has 20,000 fills; a pandas Timestamp each cost 80% of the run.

    `side` and `reason` are the kernel's codes (`rules.BUY` ..., `rules.SIGNAL` ...),
    `names` their words, in code order."""

    __slots__ = ("time", "side", "qty", "price", "fee", "reason", "side_names", "reason_names")

    def __init__(self, time: pd.DatetimeIndex | pd.Index, side: np.ndarray, qty: np.ndarray,
                 price: np.ndarray, fee: np.ndarray, reason: np.ndarray,
                 side_names: dict[int, str], reason_names: dict[int, str]):
        self.time, self.side, self.qty, self.price, self.fee, self.reason = time, side, qty, price, fee, reason
        self.side_names, self.reason_names = side_names, reason_names

    def __len__(self) -> int:
        return len(self.qty)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Fills(self.time[i], self.side[i], self.qty[i], self.price[i], self.fee[i], self.reason[i],
                         self.side_names, self.reason_names)
        return Fill(time=self.time[i], side=self.side_names[int(self.side[i])], qty=float(self.qty[i]),
                    price=float(self.price[i]), fee=float(self.fee[i]),
                    reason=self.reason_names[int(self.reason[i])])

    def __iter__(self) -> Iterator[Fill]:
        sides, reasons = self.side_names, self.reason_names
        for time, side, qty, price, fee, reason in zip(
                self.time, self.side.tolist(), self.qty.tolist(), self.price.tolist(),
                self.fee.tolist(), self.reason.tolist()):
            yield Fill(time=time, side=sides[side], qty=qty, price=price, fee=fee, reason=reasons[reason])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable arrays: not hashable

    def __repr__(self) -> str:
        return f"<Fills: {len(self)}>"

    def words(self, codes: np.ndarray, names: dict[int, str]) -> np.ndarray:
        """The codes as their words (str), in one vectorised lookup."""
        lookup = np.empty(max(names) - min(names) + 1, dtype=object)
        for code, name in names.items():
            lookup[code - min(names)] = str(name)
        return lookup[codes - min(names)]

    def sides_qtys_reasons(self) -> Iterator[tuple[str, float, str]]:
        """(side, qty, reason) of each fill, without building its Timestamp."""
        return zip(self.words(self.side, self.side_names).tolist(), self.qty.tolist(),
                   self.words(self.reason, self.reason_names).tolist())

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "time": self.time, "side": self.words(self.side, self.side_names), "qty": self.qty,
            "price": self.price, "fee": self.fee, "reason": self.words(self.reason, self.reason_names),
        }, columns=[f.name for f in fields(Fill)])


@dataclass(frozen=True)
class BacktestResult:
    version: str  # the strategy version that produced it
    metrics: Metrics
    equity: pd.Series  # after each bar's close, indexed by bar open time
    target: np.ndarray  # the strategy's exposure per bar
    fills: Fills  # a sequence of Fill, stored as columns

    def fills_frame(self) -> pd.DataFrame:
        return self.fills.frame()
