"""What a strategy is: a pure function from an OHLCV frame and typed params to a target
exposure per bar (0 = flat, 1 = the full stake), plus its parameter model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # loaded by the signal functions: the parameter models alone stay cheap
    import numpy as np
    import pandas as pd


class Params(BaseModel):
    """Base for every strategy's parameters: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


SignalFn = Callable[["pd.DataFrame", Params], "np.ndarray"]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy.

    `signal(ohlcv, params)` returns a float64 array as long as the frame, each value in
    [0, 1]: the exposure wanted after the bar at that index has closed (or a boolean array:
    all in, or flat). It may only look at bars up to and including that index, and performs
    no I/O.
    `warmup(params)` is how many bars the signal needs before its first meaningful value;
    the daemon fetches at least that many.
    `tunable` holds the declared-sensible (min, max, step) bounds offered to new configs.
    `indicators(params)`, optional, names the (indicator, column, window) the signal computes
    through `strategies.indicators` (e.g. ("sma", "close", 20)), so that a sweep can compute
    those of all its variants together; naming one the signal does not use only costs time.
    """

    name: str
    params: type[Params]
    signal: SignalFn
    warmup: Callable[[Params], int]
    description: str
    tunable: dict[str, tuple[float, float, float]]
    indicators: Callable[[Params], tuple[tuple[str, str, int], ...]] | None = None

    def exposure(self, ohlcv: pd.DataFrame, params: Params, out: np.ndarray | None = None) -> np.ndarray:
        """Run the signal and enforce its contract: finite values in [0, 1]. With `out` (a
        float64 array as long as the frame: a sweep's buffer row) the values are written
        there and it is returned, saving a copy per variant."""
        import numpy as np

        values = self._signal(ohlcv, params, keep_bool=True)
        if values.dtype == np.bool_:  # in or out: within the contract, nothing to check
            if out is None:
                return values.astype(np.float64)
            np.copyto(out, values)
            return out
        # most signals already keep the contract: two reductions check it (a NaN fails both
        # comparisons) at a fifth of the cost of cleaning; the copy keeps the result fresh
        if values.size and 0.0 <= values.min() and values.max() <= 1.0:
            if out is None:
                return values.copy()
            np.copyto(out, values)
            return out
        values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(values, 0.0, 1.0, out=out)

    def latest(self, ohlcv: pd.DataFrame, params: Params) -> float:
        """`exposure(ohlcv, params)[-1]`, the contract enforced on that bar only: what a tick
        acts on (the daemon runs this once per candle; it need not clean the window's past)."""
        value = float(self._signal(ohlcv, params)[-1])
        return 0.0 if value != value else min(max(value, 0.0), 1.0)  # NaN -> 0, -inf -> 0, inf -> 1

    def _signal(self, ohlcv: pd.DataFrame, params: Params, keep_bool: bool = False) -> np.ndarray:
        import numpy as np

        out = np.asarray(self.signal(ohlcv, params))
        if out.shape != (len(ohlcv),):
            raise ValueError(
                f"strategy {self.name!r} returned shape {out.shape}, expected ({len(ohlcv)},)"
            )
        return out if keep_bool and out.dtype == np.bool_ else out.astype(np.float64, copy=False)
