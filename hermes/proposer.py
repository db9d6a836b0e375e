"""Propose the next experiment: one variable, values inside its declared bounds, evaluated
by walk-forward backtests with the strategy's own signal function (the sweep API).

Walk-forward here: the lookback window is cut into consecutive folds; every candidate and
the baseline are backtested on each fold separately (each fold starts flat, with the bars
before it as indicator warm-up), and a candidate counts only if it beats the baseline on
the weakest goal's metric on average *and* in most folds. The forward test is the shadow
trading that follows; the deflated Sharpe ratio reported with each candidate says how much
of its Sharpe survives the number of candidates tried.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from trader.backtest import sweep
from trader.config import RISK_TUNABLES, StrategyConfig
from trader.errors import ConfigError
from trader.goals import POLARITY
from trader.timeframes import bars_per_year

from . import stats
from .types import Candidate, Proposal

# Which variables are likelier to move which goal, tried first when the budget is short.
AFFINITY = {
    "max_drawdown": ("stop_loss", "stake_fraction", "take_profit"),
    "win_rate": ("take_profit", "stop_loss"),
    "profit_factor": ("take_profit", "stop_loss"),
}
FOLDS = 4
MIN_FOLDS_BETTER = 3  # of FOLDS: consistency, not one lucky quarter


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
                  budget: int = 100) -> list[tuple[str, float]]:
    """Up to `budget` (variable, value) pairs across the tunable variables, each a valid config.
    The budget is shared out evenly; what a small grid leaves unused goes to the others."""
    names = variables_by_priority(config, weakest)
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


def evaluate(ohlcv: pd.DataFrame, config: StrategyConfig, variants: Sequence[tuple[str, float]],
             metric: str, folds: int = FOLDS, progress=None) -> list[Candidate]:
    """Walk-forward evaluation of each variant against the baseline on the weakest metric.
    `progress(done, total)` is called as backtests complete (for a progress bar)."""
    if not variants:
        return []
    changes = [{}] + [{name: value} for name, value in variants]
    configs = [config] + [config.with_value(n, v) for n, v in variants]
    warmup = max(c.strategy_def().warmup(c.params) for c in configs)
    n = len(ohlcv)
    bounds = np.linspace(warmup, n, folds + 1).astype(int)
    if bounds[1] - bounds[0] < 24:
        raise ValueError(f"{n} bars are too few for {folds} walk-forward folds after a {warmup}-bar warm-up")
    per_fold = []
    total = folds * len(configs)
    for k in range(folds):
        part = ohlcv.iloc[bounds[k] - warmup: bounds[k + 1]]
        done = k * len(configs)
        per_fold.append(sweep(part, config, configs,
                              progress=None if progress is None else (lambda i, _n, d=done: progress(d + i, total))))
    sign = POLARITY.get(metric, 1)
    values = np.array([[_num(table.iloc[i][metric]) for table in per_fold] for i in range(len(changes))])
    sharpes = np.array([[_num(table.iloc[i]["sharpe"]) for table in per_fold] for i in range(len(changes))])
    diffs = sign * (values[1:] - values[0])
    mean_sharpe = sharpes.mean(axis=1)
    deflated = _deflated(mean_sharpe[1:], bars=bounds[-1] - bounds[0], per_year=bars_per_year(config.timeframe))
    out = []
    for i, (name, value) in enumerate(variants):
        out.append(Candidate(
            variable=name, value=float(value), baseline_value=_as_float(config.value_of(name)),
            version=configs[i + 1].version, folds=folds, metric=metric,
            improvement=float(diffs[i].mean()), folds_better=int((diffs[i] > 0).sum()),
            oos_sharpe=float(mean_sharpe[i + 1]), deflated_sharpe=float(deflated[i]),
        ))
    return out


def choose(candidates: Sequence[Candidate], weakest: str | None) -> Proposal | None:
    """The rule-based choice: the largest consistent improvement of the weakest metric."""
    good = [c for c in candidates if c.improvement > 0 and c.folds_better >= min(MIN_FOLDS_BETTER, c.folds)]
    if not good:
        return None
    best = max(good, key=lambda c: (c.improvement, c.deflated_sharpe))
    metric = best.metric
    return Proposal(
        variable=best.variable, value=best.value, baseline_value=best.baseline_value, version=best.version,
        chosen_by="rules", candidates_tried=len(candidates),
        rationale=(f"{metric} is the weakest goal. Changing {best.variable} from {_fmt(best.baseline_value)} to "
                   f"{_fmt(best.value)} improved {metric} by {best.improvement:+.4f} on average over "
                   f"{best.folds} walk-forward folds (better in {best.folds_better} of {best.folds}); "
                   f"out-of-sample Sharpe {best.oos_sharpe:.2f}, deflated Sharpe probability "
                   f"{best.deflated_sharpe:.2f} after {len(candidates)} candidates."),
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
