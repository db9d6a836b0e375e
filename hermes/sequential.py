"""Anytime-valid evidence that a challenger beats its control on the goal it set out to move.

An experiment states a claim (the goal metric it aims at). Each claim has a paired per-bar
statistic x_t, computed from the two paper books' returns on the same bar, whose conditional
mean is positive when the claim holds:

| claim (goal metric)                          | statistic x_t                          | effect      |
|----------------------------------------------|----------------------------------------|-------------|
| sharpe                                       | c_t / s_c - b_t / s_b  (own volatility) | predictive  |
| sortino                                      | c_t / d_c - b_t / d_b  (own downside)   | predictive  |
| monthly_return, total_return, cagr,          | c_t - b_t                              | predictive  |
| win_rate, profit_factor (no per-bar form)    |                                        |             |
| max_drawdown breached, by a risk setting     | min(b_t, 0)^2 - min(c_t, 0)^2          | mechanical  |
| max_drawdown otherwise                       | the same minus (max(b_t,0)^2 - max(c_t,0)^2) | predictive |

c and b are the challenger's and the control's simple returns; s and d their root mean
square (all, or downside only) over the bars *before* t, so every scale is predictable.

The test is a bet against the null H0: E[x_t | past] <= 0 at every bar (Shafer's testing by
betting; Waudby-Smith & Ramdas 2024). With y_t = clip(x_t / (SPREAD * r_{t-1}), -1, 1), r the
root mean square of the earlier x, and a bet lambda_t in [0, MAX_BET] chosen from the earlier
y only (aGRAPA: mean / (variance + mean^2) of the earlier y, shrunk toward 0),

    K_t = prod_{i <= t} (1 + lambda_i y_i)

is a non-negative supermartingale under H0 (for the clipped statistic; the clip keeps the
sign of the mean for symmetric noise, which is what a market with no edge gives). Ville's
inequality gives P(K_t ever reaches 1/alpha) <= alpha: the experiment may be looked at
every week, for as many weeks as it runs, and stopped as soon as the evidence suffices,
with no fixed number of looks and no penalty for looking. The wealth can grow by at most
a factor 1 + MAX_BET per bar, so a handful of daily bars can never reach a high bar by luck.

A mechanical claim (holding less lowers the downside, made only against a breached failure
threshold) gives a statistic that is positive on almost every bar in the market, so the
wealth grows fast; a predictive one (a moving-average
period) must earn its evidence from a small mean in a lot of noise. The same test serves
both honestly: the evidence needed is the same, the bars needed to collect it differ.

References: G. Shafer (2021), "Testing by betting", JRSS A 184(2); I. Waudby-Smith &
A. Ramdas (2024), "Estimating means of bounded random variables by betting", JRSS B 86(1);
J. Ville (1939), "Étude critique de la notion de collectif".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Effect = Literal["predictive", "mechanical"]

SPREAD = 3.0  # y = x / (SPREAD * rms of earlier x): most bars well inside the clip
MAX_BET = 0.5  # of the wealth per bar: a bar can at most multiply it by 1.5
BURN = 5  # bars that only feed the scales before the first bet
PRIOR = 1.0  # pseudo-observations of y = 0 with variance 1/4 that shrink the first bets


@dataclass(frozen=True)
class Claim:
    metric: str  # the goal metric the experiment aims at
    statistic: str  # the paired per-bar statistic tested
    effect: Effect
    why: str  # one sentence for the report


_RETURN = ("return", "predictive", "the mean per-bar return difference: a higher {m} needs more return on the same bars")
CLAIMS: dict[str, tuple[str, Effect, str]] = {
    "sharpe": ("risk_adjusted_return", "predictive",
               "each book's return over its own earlier volatility: a higher Sharpe ratio is more return per "
               "unit of risk, not more return"),
    "sortino": ("downside_adjusted_return", "predictive",
                "each book's return over its own earlier downside deviation, as the Sortino ratio measures it"),
    "max_drawdown": ("downside_variance", "mechanical",
                     "the difference of squared losing returns: the drawdown breaches a failure threshold, and "
                     "holding less brings it down mechanically"),
    "monthly_return": _RETURN[:2] + (_RETURN[2].format(m="monthly return"),),
    "total_return": _RETURN[:2] + (_RETURN[2].format(m="total return"),),
    "cagr": _RETURN[:2] + (_RETURN[2].format(m="CAGR"),),
    "win_rate": _RETURN[:2] + ("the mean per-bar return difference (a win rate has no per-bar form; a higher win "
                               "rate is only worth having with at least as much return)",),
    "profit_factor": _RETURN[:2] + ("the mean per-bar return difference (a profit factor has no per-bar form; it "
                                    "rises with the return earned per unit lost)",),
}


# Only the risk settings lower risk by construction, and holding less is a remedy, not an
# improvement: it shrinks gains with the losses, on a market with no edge too. So a risk
# setting is judged on the losses it avoids only when the drawdown breaches a *failure*
# threshold (the money at risk must come down now: far less evidence is needed). Any other
# drawdown claim, and every one by a signal parameter (a moving-average period that happens to
# hold less often), must show losses cut by more than the gains given up.
MECHANICAL = ("stake_fraction", "stop_loss", "take_profit")
_ASYMMETRY = ("downside_asymmetry", "predictive",
              "the squared losses avoided minus the squared gains given up: holding less lowers both alike, "
              "so a signal change must cut losses more than gains to lower the drawdown for a reason")


def claim_for(metric: str | None, variable: str | None = None, breach: bool = False) -> Claim:
    """The claim an experiment on `variable` makes about `metric`; `breach`: the metric breaches
    a failure threshold (only then may a risk setting lower the drawdown mechanically)."""
    metric = metric if metric in CLAIMS else "sharpe"
    statistic, effect, why = CLAIMS[metric]
    if effect == "mechanical" and not (breach and (variable is None or variable in MECHANICAL)):
        statistic, effect, why = _ASYMMETRY
    return Claim(metric=metric, statistic=statistic, effect=effect, why=why)


def _earlier_rms(values: np.ndarray) -> np.ndarray:
    """Root mean square of values[:t] for each t (0 where nothing came before)."""
    n = values.size
    sums = np.concatenate([[0.0], np.cumsum(values * values)[:-1]]) if n else np.zeros(0)
    counts = np.arange(n, dtype=float)
    return np.sqrt(np.divide(sums, counts, out=np.zeros(n), where=counts > 0))


def _scaled(returns: np.ndarray, scale: np.ndarray, floor: np.ndarray) -> np.ndarray:
    s = np.maximum(scale, floor)
    return np.divide(returns, s, out=np.zeros_like(returns), where=s > 0)


def statistic(name: str, challenger: np.ndarray, control: np.ndarray) -> np.ndarray:
    """The paired per-bar statistic `name` (see the table above); positive favours the challenger."""
    c = np.asarray(challenger, dtype=float)
    b = np.asarray(control, dtype=float)
    if c.shape != b.shape or c.ndim != 1:
        raise ValueError(f"paired series must be one-dimensional and of equal length: {c.shape} != {b.shape}")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(b))):
        raise ValueError("returns contain NaN or infinite values")
    if name == "return":
        return c - b
    if name == "downside_variance":
        return np.minimum(b, 0.0) ** 2 - np.minimum(c, 0.0) ** 2
    if name == "downside_asymmetry":
        return (np.minimum(b, 0.0) ** 2 - np.minimum(c, 0.0) ** 2) - (np.maximum(b, 0.0) ** 2 - np.maximum(c, 0.0) ** 2)
    if name in ("risk_adjusted_return", "downside_adjusted_return"):
        pick = (lambda r: r) if name == "risk_adjusted_return" else (lambda r: np.minimum(r, 0.0))
        # a book that has not moved yet has no scale of its own: a quarter of the pair's keeps it finite
        floor = 0.25 * np.sqrt((_earlier_rms(c) ** 2 + _earlier_rms(b) ** 2) / 2)
        return _scaled(c, _earlier_rms(pick(c)), floor) - _scaled(b, _earlier_rms(pick(b)), floor)
    raise ValueError(f"unknown statistic {name!r}")


def wealth(x: np.ndarray) -> np.ndarray:
    """K_t for every bar t of the betting test of H0: E[x_t | past] <= 0 (vectorised: every
    quantity a bet uses is a cumulative sum of earlier bars)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    if n == 0:
        return np.ones(0)
    scale = _earlier_rms(x)
    active = (np.arange(n) >= BURN) & (scale > 0)
    y = np.zeros(n)
    np.divide(x, SPREAD * scale, out=y, where=active)
    y = np.clip(y, -1.0, 1.0)
    seen = np.concatenate([[0.0], np.cumsum(active)[:-1]])
    sum_y = np.concatenate([[0.0], np.cumsum(y)[:-1]])
    sum_y2 = np.concatenate([[0.0], np.cumsum(y * y)[:-1]])
    mean = sum_y / (seen + PRIOR)
    var = (sum_y2 + PRIOR * 0.25) / (seen + PRIOR) - mean * mean
    bet = np.clip(mean / np.maximum(var + mean * mean, 1e-12), 0.0, MAX_BET)
    bet[~active] = 0.0
    return np.exp(np.cumsum(np.log1p(bet * y)))


@dataclass(frozen=True)
class Evidence:
    n: int  # paired bars
    mean: float  # mean of the statistic
    e_value: float  # K at the last bar: evidence for the claim
    e_value_worse: float  # the same bet on -x: evidence that the challenger is worse

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean_statistic": self.mean, "e_value": self.e_value, "e_value_worse": self.e_value_worse}


def evidence(name: str, challenger: np.ndarray, control: np.ndarray) -> Evidence:
    x = statistic(name, challenger, control)
    if x.size == 0:
        return Evidence(0, 0.0, 1.0, 1.0)
    return Evidence(int(x.size), float(x.mean()), float(wealth(x)[-1]), float(wealth(-x)[-1]))
