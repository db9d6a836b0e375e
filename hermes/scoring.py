"""Score: the observed metrics against the Well-Defined Goal.

Success thresholds are met or not yet; failure thresholds are breached ("failing") or not.
Failures count at once (they protect capital); success needs `min_trades` closed trades
before any verdict. The weakest goal is the unmet success goal furthest from its threshold,
measured relative to the threshold's size; it orients the cycle's experiment.
"""

from __future__ import annotations

import pandas as pd

from trader.goals import POLARITY, Goals, meets

from .types import GoalScore, Scorecard


def shortfall(metric: str, value: float, threshold: float) -> float:
    scale = max(abs(threshold), 0.01)  # a threshold of 0 (Sharpe >= 0) still has a scale
    gap = (threshold - value) if POLARITY[metric] > 0 else (value - threshold)
    return max(0.0, gap / scale)


def months_below_floor(equity: pd.Series, floor: float) -> tuple[int, float | None]:
    """How many of the latest complete calendar months in a row returned less than `floor`,
    and the latest complete month's return."""
    if len(equity) < 2:
        return 0, None
    month_end = equity.resample("ME").last().dropna()
    returns = month_end.pct_change().dropna()
    if len(returns) and equity.index[-1] < month_end.index[-1]:
        returns = returns.iloc[:-1]  # the month in progress is not complete
    run = 0
    for r in reversed(returns.to_numpy()):
        if r < floor:
            run += 1
        else:
            break
    return run, (float(returns.iloc[-1]) if len(returns) else None)


def score(goals: Goals, metrics: dict, last_week: dict, trades: int, equity: pd.Series, window_days: int,
          fees_paid: float, slippage_realised: float | None, slippage_modeled: float) -> Scorecard:
    scores: list[GoalScore] = []
    enough = trades >= goals.min_trades
    for metric, threshold in goals.success.items():
        value = metrics.get(metric)
        if value is None or not enough:
            status, gap = "no_verdict", shortfall(metric, value, threshold) if value is not None else 0.0
        else:
            status = "met" if meets(metric, value, threshold) else "not_yet"
            gap = shortfall(metric, value, threshold)
        scores.append(GoalScore(metric=metric, kind="success", threshold=threshold, value=value,
                                status=status, shortfall=gap))
    failing = False
    for metric, threshold in goals.failure.thresholds.items():
        value = metrics.get(metric)
        breached = value is not None and not meets(metric, value, threshold) and value != threshold
        failing = failing or breached
        scores.append(GoalScore(metric=metric, kind="failure", threshold=threshold, value=value,
                                status="failing" if breached else "met",
                                shortfall=shortfall(metric, value, threshold) if value is not None else 0.0))
    floor = goals.failure.monthly_return_floor
    if floor is not None:
        # "monthly_return" here is the latest complete calendar month's return
        run, latest = months_below_floor(equity, floor.value)
        breached = run >= floor.months
        failing = failing or breached
        scores.append(GoalScore(metric="monthly_return", kind="failure", threshold=floor.value, value=latest,
                                status="failing" if breached else "met", shortfall=0.0))
    success = [g for g in scores if g.kind == "success"]
    if failing:
        verdict = "failing"
    elif not enough or any(g.status == "no_verdict" for g in success):
        verdict = "no_verdict"
    elif all(g.status == "met" for g in success):
        verdict = "met"
    else:
        verdict = "not_yet"
    measurable = [g for g in success if g.value is not None]
    weakest = max(measurable, key=lambda g: g.shortfall).metric if measurable else None
    return Scorecard(window_days=window_days, metrics=metrics, last_week=last_week, goals=tuple(scores),
                     verdict=verdict, weakest=weakest, trades=trades, fees_paid=fees_paid,
                     slippage_realised=slippage_realised, slippage_modeled=slippage_modeled)


def measured(card: Scorecard) -> bool:
    """Whether the review could score anything: some goal has a value (a window without equity
    points, such as a review of a ledger the daemon never ran on in that window, has none)."""
    return any(g.value is not None for g in card.goals)
