"""Moving-average crossover trend follower: long while the fast average is above the slow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from .base import Params, Strategy

if TYPE_CHECKING:  # see base.py: loaded when a signal is computed
    import numpy as np
    import pandas as pd


class MaCrossParams(Params):
    fast: int = Field(20, ge=2, le=1000, description="bars in the fast average")
    slow: int = Field(50, ge=3, le=5000, description="bars in the slow average")
    kind: Literal["sma", "ema"] = Field("sma", description="simple or exponential averages")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "MaCrossParams":
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


def signal(ohlcv: pd.DataFrame, params: MaCrossParams) -> np.ndarray:
    from . import indicators as ind

    close = ind.column(ohlcv, "close")
    average = ind.sma if params.kind == "sma" else ind.ema
    fast = average(close, params.fast)
    slow = average(close, params.slow)
    # NaN during warm-up compares False: flat until both averages exist
    return fast > slow


STRATEGY = Strategy(
    name="ma_cross",
    params=MaCrossParams,
    signal=signal,
    warmup=lambda p: p.slow,
    description="Long while the fast moving average is above the slow one.",
    tunable={"fast": (5, 50, 1), "slow": (20, 200, 5)},
    indicators=lambda p: ((p.kind, "close", p.fast), (p.kind, "close", p.slow)),
)
