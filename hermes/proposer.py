"""Propose the next experiments: one variable each, values inside its declared bounds,
evaluated by walk-forward backtests with the strategy's own signal function.

Walk-forward with a holdout. The lookback window is cut into FOLDS consecutive folds, with
a warm-up taken from the bars *before* the window, so no warm-up bar is ever scored. The
baseline and every candidate run once over warm-up + window (a position carries across a
fold boundary as it would in live trading) and each fold is scored on its own bars. The
choice uses the first FOLDS - 1 folds only: a candidate qualifies when it improves the
claim's metric on average and in at least MIN_FOLDS_BETTER of them. The last fold is held
out: nothing is chosen on it, and its bars become the first evidence of the chosen
experiments' sequential test (`hermes.sequential`), which shadow trading then continues.
The screening's multiplicity is reported with each candidate: how many were tried, and the
deflated Sharpe ratio of its screening Sharpe given that many trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from trader.backtest import equity_curves, kernel
from trader.backtest.result import SECONDS_PER_MONTH
from trader.config import RISK_TUNABLES, StrategyConfig
from trader.errors import ConfigError
from trader.goals import POLARITY
from trader.timeframes import SECONDS_PER_YEAR, bars_per_year, timeframe_seconds

from . import stats
from .types import Candidate, Proposal

# Which variables are likelier to move which goal, tried first when the budget is short.
AFFINITY = {
    "max_drawdown": ("stop_loss", "stake_fraction", "take_profit"),
    "win_rate": ("take_profit", "stop_loss"),
    "profit_factor": ("take_profit", "stop_loss"),
}
FOLDS = 3  # the last one is the holdout: a third of the lookback window opens each experiment's test
MIN_FOLDS_BETTER = 2  # of the FOLDS - 1 screening folds: consistency, not one lucky stretch
MIN_FOLD_BARS = 10  # scored bars per fold
# metrics with no equity-curve form are screened on the return they stand for (hermes.sequential)
SCREENED_AS = {"win_rate": "total_return", "profit_factor": "total_return"}


class HistoryTooShort(ValueError):
    """The candles do not cover the lookback window plus the strategy's warm-up."""


def candidate_values(config: StrategyConfig, variable: str, rejected: Iterable[float], limit: int) -> list[float]:
    """Values on the variable's grid (min..max by step), never the current one or one
    already rejected: half the nearest neighbours of the current value, half spread over
    the whole range, so that Hermes both refines and explores."""
    bounds = config.tunable[variable]
    current = config.value_of(variable)
    count = int(math.floor((bounds.max - bounds.min) / bounds.step + 1e-9)) + 1
    decimals = max(0, -int(math.floor(math.log10(bounds.step)))) + 2 if bounds.step < 1 else 0
    grid = [round(bounds.min + i * bounds.step, decimals) for i in range(count)]
    refused = {round(float(v), 9) for v in rejected}
    grid = [v for v in grid if (current is None or abs(v - current) > bounds.step * 1e-6) and round(v, 9) not in refused]
    if len(grid) <= limit:
        return grid
    near = sorted(grid, key=lambda v: abs(v - (current if current is not None else grid[0])))[: limit // 2]
    rest = [v for v in grid if v not in near]
    spread = [rest[int(i)] for i in np.linspace(0, len(rest) - 1, limit - len(near))] if rest else []
    return sorted(set(near) | set(spread))


def variables_by_priority(config: StrategyConfig, weakest: str | None) -> list[str]:
    preferred = AFFINITY.get(weakest or "", ())
    names = list(config.tunable)
    return sorted(names, key=lambda n: (preferred.index(n) if n in preferred else len(preferred),
                                        n in RISK_TUNABLES, names.index(n)))


def plan_variants(config: StrategyConfig, weakest: str | None, rejected: dict[str, set[float]],
                  budget: int = 100, skip: Iterable[str] = ()) -> list[tuple[str, float]]:
    """Up to `budget` (variable, value) pairs across the tunable variables but `skip`, each a
    valid config. The budget is shared out evenly; what a small grid leaves unused goes to the others."""
    names = [n for n in variables_by_priority(config, weakest) if n not in set(skip)]
    if not names:
        return []

    def valid(name: str, limit: int) -> list[tuple[str, float]]:
        out = []
        for value in candidate_values(config, name, rejected.get(name, ()), limit):
            try:
                config.with_value(name, value)
            except ConfigError:
                continue  # e.g. a fast average no longer faster than the slow one
            out.append((name, value))
        return out

    share = max(2, budget // len(names))
    plans = {name: valid(name, share) for name in names}
    spare = budget - sum(len(p) for p in plans.values())
    for name in names:  # in priority order
        if spare <= 0:
            break
        if len(plans[name]) >= share:  # its grid was cut: it can take more
            wider = valid(name, share + spare)
            spare -= len(wider) - len(plans[name])
            plans[name] = wider
    return [pair for name in names for pair in plans[name]][:budget]


@dataclass
class Screen:
    """A walk-forward screening: the candidates, and what their experiments start from."""

    candidates: list[Candidate]
    folds: list[tuple[datetime, datetime]]  # first and last bar of each fold
    curves: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # version -> equity per bar
    holdout: slice = field(default_factory=lambda: slice(0, 0))  # the holdout fold's bars in the curves
    baseline_version: str = ""

    def holdout_returns(self, version: str) -> tuple[np.ndarray, np.ndarray]:
        """(challenger, baseline) simple returns on the holdout fold's bars."""
        lo, hi = self.holdout.start, self.holdout.stop
        pick = lambda curve: curve[lo - 1:hi] if lo > 0 else np.r_[curve[0], curve[:hi]]  # noqa: E731
        returns = lambda curve: np.diff(pick(curve)) / pick(curve)[:-1]  # noqa: E731
        return returns(self.curves[version]), returns(self.curves[self.baseline_version])


def evaluate(history: pd.DataFrame, config: StrategyConfig, variants: Sequence[tuple[str, float]],
             metric: str, since: datetime, folds: int = FOLDS, progress=None) -> Screen:
    """Walk-forward screening of each variant against the baseline on `metric` over the bars
    from `since` on (the warm-up comes from the bars before). `progress(done, total)` is
    called as backtests complete (for a progress bar)."""
    configs = [config] + [config.with_value(n, v) for n, v in variants]
    warmup = max(c.strategy_def().warmup(c.params) for c in configs)
    first = max(int(history.index.searchsorted(pd.Timestamp(since))), warmup)
    scored = len(history) - first
    if scored < folds * MIN_FOLD_BARS:
        raise HistoryTooShort(
            f"{scored} bars after a {warmup}-bar warm-up are too few for {folds} walk-forward folds of at least "
            f"{MIN_FOLD_BARS} bars: the candles must cover the lookback window plus {warmup} bars before it")
    frame = history.iloc[first - warmup:]
    bounds = warmup + np.linspace(0, scored, folds + 1).astype(int)
    curves = equity_curves(frame, config, configs, progress=progress)
    screened = SCREENED_AS.get(metric, metric)
    per_year = bars_per_year(config.timeframe)
    bar = timeframe_seconds(config.timeframe)
    scored = [[_fold_metrics(curve, bounds[k], bounds[k + 1], per_year, bar) for k in range(folds)] for curve in curves]
    values = np.array([[fold[screened] for fold in row] for row in scored])
    sharpes = np.array([[fold["sharpe"] for fold in row] for row in scored])
    sign = POLARITY.get(screened, 1)
    diffs = sign * (values[1:] - values[0])
    choice = folds - 1
    screen_sharpe = sharpes[:, :choice].mean(axis=1)
    deflated = _deflated(screen_sharpe[1:], bars=int(bounds[choice] - bounds[0]), per_year=per_year)
    candidates = [Candidate(
        variable=name, value=float(value), baseline_value=_as_float(config.value_of(name)),
        version=configs[i + 1].version, folds=choice, metric=metric,
        improvement=float(diffs[i, :choice].mean()), folds_better=int((diffs[i, :choice] > 0).sum()),
        sharpe=float(screen_sharpe[i + 1]), deflated_sharpe=float(deflated[i]),
        holdout_improvement=float(diffs[i, choice]), holdout_sharpe=float(sharpes[i + 1, choice]),
    ) for i, (name, value) in enumerate(variants)]
    index = frame.index
    return Screen(candidates=candidates,
                  folds=[(index[bounds[k]].to_pydatetime(), index[bounds[k + 1] - 1].to_pydatetime())
                         for k in range(folds)],
                  curves={c.version: curve for c, curve in zip(configs, curves)},
                  holdout=slice(int(bounds[choice]), int(bounds[folds])), baseline_version=config.version)


def _fold_metrics(curve: np.ndarray, lo: int, hi: int, per_year: float, bar_seconds: int) -> dict[str, float]:
    """The goal metrics of bars lo..hi-1 alone, from the equity at the close before them."""
    start = float(curve[lo - 1]) if lo > 0 else float(curve[0])
    segment = np.ascontiguousarray(np.r_[start, curve[lo:hi]])
    total, sharpe, sortino, drawdown = kernel.equity_stats(segment, start, per_year)
    growth, span = 1.0 + total, (hi - lo) * bar_seconds
    return {"total_return": total, "sharpe": sharpe, "sortino": sortino if math.isfinite(sortino) else 0.0,
            "max_drawdown": drawdown, "monthly_return": _compound(growth, span / SECONDS_PER_MONTH),
            "cagr": _compound(growth, span / SECONDS_PER_YEAR)}


def _compound(growth: float, periods: float) -> float:
    return -1.0 if growth <= 0 else float(growth ** (1.0 / periods) - 1.0) if periods > 0 else 0.0


def qualified(candidates: Sequence[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.improvement > 0 and c.folds_better >= min(MIN_FOLDS_BETTER, c.folds)]


def choose(candidates: Sequence[Candidate], slots: int = 1, busy: Iterable[str] = ()) -> list[Proposal]:
    """The rule-based choice: the largest consistent improvement of the claim's metric on the
    screening folds, the best value of each variable, up to `slots` proposals. One experiment
    per variable at a time (a variable already under test is skipped): three neighbouring
    values of one variable would split the error budget three ways to answer one question."""
    good = sorted(qualified(candidates), key=lambda c: (c.improvement, c.deflated_sharpe), reverse=True)
    busy = set(busy)
    picked: list[Candidate] = []
    for c in good:
        if c.variable not in busy and all(p.variable != c.variable for p in picked):
            picked.append(c)
    return [proposal_from(c, len(candidates), "rules") for c in picked[:slots]]


def proposal_from(c: Candidate, tried: int, chosen_by: str, rationale: str | None = None) -> Proposal:
    return Proposal(
        variable=c.variable, value=c.value, baseline_value=c.baseline_value, version=c.version, metric=c.metric,
        chosen_by=chosen_by, candidates_tried=tried,
        rationale=rationale or (
            f"{c.metric} is the goal to move. Changing {c.variable} from {_fmt(c.baseline_value)} to {_fmt(c.value)} "
            f"improved it by {c.improvement:+.4f} on average over {c.folds} screening folds (better in "
            f"{c.folds_better} of {c.folds}); chosen among {tried} candidates, so its screening Sharpe "
            f"{c.sharpe:.2f} has a deflated Sharpe probability of {c.deflated_sharpe:.2f}. On the held-out fold, "
            f"which played no part in the choice, the change was {c.holdout_improvement:+.4f} "
            f"(Sharpe {c.holdout_sharpe:.2f}); those bars open its sequential test."),
    )


def _deflated(sharpes_annual: np.ndarray, bars: int, per_year: float) -> np.ndarray:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014) with normal returns assumed:
    P(true SR > SR*) = Φ((SR - SR*) √(n-1)), SR* the expected maximum of N Sharpe estimates
    under the null, from their variance across candidates. Per-bar Sharpe ratios."""
    sr = sharpes_annual / math.sqrt(per_year)
    trials = len(sr)
    if trials == 0 or bars < 3:
        return np.zeros(trials)
    variance = float(np.var(sr, ddof=1)) if trials > 1 else 0.0
    expected_max = stats.expected_max_sharpe(trials, variance)
    norm = NormalDist()
    return np.array([norm.cdf((s - expected_max) * math.sqrt(bars - 1)) for s in sr])


def _num(value) -> float:
    return 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _as_float(value) -> float | None:
    return None if value is None else float(value)


def _fmt(value: float | None) -> str:
    return "off" if value is None else f"{value:g}"


def warmup_needed(config: StrategyConfig) -> int:
    """Bars of warm-up the strategy needs at any value Hermes may give its tunables."""
    needed = config.strategy_def().warmup(config.params)
    for name, bounds in config.tunable.items():
        for value in (bounds.min, bounds.max):
            try:
                changed = config.with_value(name, value)
            except ConfigError:
                continue
            needed = max(needed, changed.strategy_def().warmup(changed.params))
    return int(needed)
