"""Donchian channel breakout: buy a close above the prior N-bar high, sell a close below the
prior M-bar low."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from .base import Params, Strategy

if TYPE_CHECKING:  # see base.py: loaded when a signal is computed
    import numpy as np
    import pandas as pd


class DonchianParams(Params):
    entry: int = Field(20, ge=2, le=2000, description="bars in the breakout high")
    exit: int = Field(10, ge=2, le=2000, description="bars in the exit low")


def signal(ohlcv: pd.DataFrame, params: DonchianParams) -> np.ndarray:
    from . import indicators as ind

    close = ind.column(ohlcv, "close")
    # the channel of the bars *before* t: a close can only break a level set earlier
    upper = ind.shift(ind.rolling_max(ind.column(ohlcv, "high"), params.entry))
    lower = ind.shift(ind.rolling_min(ind.column(ohlcv, "low"), params.exit))
    return ind.latch(close > upper, close < lower)


STRATEGY = Strategy(
    name="donchian",
    params=DonchianParams,
    signal=signal,
    warmup=lambda p: max(p.entry, p.exit) + 1,
    description="Long on a close above the previous `entry`-bar high until a close below "
    "the previous `exit`-bar low.",
    tunable={"entry": (10, 100, 5), "exit": (5, 50, 5)},
)
