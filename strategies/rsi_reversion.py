"""RSI mean reversion: buy when oversold, sell once RSI has recovered to the exit level."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from .base import Params, Strategy

if TYPE_CHECKING:  # see base.py: loaded when a signal is computed
    import numpy as np
    import pandas as pd


class RsiReversionParams(Params):
    period: int = Field(14, ge=2, le=500, description="RSI look-back in bars (Wilder smoothing)")
    oversold: float = Field(30.0, gt=0, lt=100, description="enter when RSI falls below this")
    exit_level: float = Field(55.0, gt=0, lt=100, description="leave when RSI rises above this")

    @model_validator(mode="after")
    def _entry_below_exit(self) -> "RsiReversionParams":
        if self.oversold >= self.exit_level:
            raise ValueError(
                f"oversold ({self.oversold}) must be below exit_level ({self.exit_level})"
            )
        return self


def signal(ohlcv: pd.DataFrame, params: RsiReversionParams) -> np.ndarray:
    from . import indicators as ind

    rsi = ind.rsi(ind.column(ohlcv, "close"), params.period)
    # comparisons with NaN (warm-up) are False: no entry, no exit
    return ind.latch(rsi < params.oversold, rsi > params.exit_level)


STRATEGY = Strategy(
    name="rsi_reversion",
    params=RsiReversionParams,
    signal=signal,
    warmup=lambda p: p.period + 1,
    description="Long from an RSI below `oversold` until it rises above `exit_level`.",
    tunable={"period": (5, 50, 1), "oversold": (10, 40, 1), "exit_level": (45, 80, 1)},
)
