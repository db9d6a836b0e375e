"""The user's Well-Defined Goal (`config/goals.yaml`): success and failure thresholds, the
evidence needed for a verdict, and the review cadence. Loaded once into frozen models.

Every threshold names a metric whose direction is known (`POLARITY`): a success threshold
is met when the metric is at least as good as the value; a failure threshold is breached
when the metric is worse than the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, field_validator

from .errors import ConfigError
from .yamlfile import Frozen, format_problems, kind_of, pydantic_problems, read_yaml

# +1: higher is better; -1: lower is better.
POLARITY: dict[str, int] = {
    "monthly_return": +1,
    "total_return": +1,
    "cagr": +1,
    "sharpe": +1,
    "sortino": +1,
    "win_rate": +1,
    "profit_factor": +1,
    "max_drawdown": -1,
}


# What a threshold of each metric can sensibly be (fractions, ratios).
RANGES: dict[str, tuple[float, float]] = {
    "monthly_return": (-1.0, 10.0),
    "total_return": (-1.0, 1000.0),
    "cagr": (-1.0, 1000.0),
    "sharpe": (-20.0, 20.0),
    "sortino": (-20.0, 50.0),
    "win_rate": (0.0, 1.0),
    "profit_factor": (0.0, 100.0),
    "max_drawdown": (0.0, 1.0),
}


def _known_metrics(value: dict[str, float]) -> dict[str, float]:
    for name, threshold in value.items():
        if name not in POLARITY:
            raise ValueError(f"unknown metric {name!r}; expected one of: {', '.join(POLARITY)}")
        low, high = RANGES[name]
        if not (low < threshold <= high if name == "max_drawdown" else low <= threshold <= high):
            bracket = "(" if name == "max_drawdown" else "["
            raise ValueError(f"{name}: {threshold} is out of range; expected a value in {bracket}{low:g}, {high:g}]"
                             + (" (a fraction: 0.15 is 15%)" if name == "max_drawdown" else ""))
    return value


class ReturnFloor(Frozen):
    """Failure when the monthly return stays below `value` for `months` calendar months in a row."""

    value: float = Field(gt=-1, lt=1)
    months: int = Field(2, ge=1, le=24)


class Failure(Frozen):
    thresholds: dict[str, float] = {"max_drawdown": 0.15, "sharpe": 0.0}
    monthly_return_floor: Optional[ReturnFloor] = ReturnFloor(value=-0.02, months=2)

    _check = field_validator("thresholds")(_known_metrics)


class Review(Frozen):
    cron: str = Field("0 6 * * mon", description="when Hermes reviews, a 5-field cron expression (UTC)")
    lookback_days: int = Field(90, ge=7, le=3650, description="history scored and backtested")
    false_promotions_per_year: float = Field(
        0.05, gt=0, le=1, description="Hermes' error budget: expected promotions of a useless change per year, "
        "at most; more lets weaker effects through sooner, and more of them by luck")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        from datetime import datetime, timezone

        try:
            trigger = CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a cron expression ({exc}); expected e.g. '0 6 * * mon'") from None
        if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:  # e.g. 31 February
            raise ValueError(f"{value!r} never fires (no such date); expected e.g. '0 6 * * mon'")
        return value


class Goals(Frozen):
    success: dict[str, float] = {"monthly_return": 0.03, "sharpe": 1.5, "max_drawdown": 0.10}
    failure: Failure = Failure()
    min_trades: int = Field(10, ge=0, le=100_000, description="trades needed before any verdict")
    on_halt: Literal["close", "keep"] = Field(
        "close", description="what the kill switch does with an open position"
    )
    review: Review = Review()

    _check = field_validator("success")(_known_metrics)

    @property
    def max_drawdown_limit(self) -> float | None:
        """The drawdown beyond which the daemon halts (the kill switch), if any."""
        return self.failure.thresholds.get("max_drawdown")


def meets(metric: str, value: float, threshold: float) -> bool:
    """Is `value` at least as good as `threshold` for this metric?"""
    return value >= threshold if POLARITY[metric] > 0 else value <= threshold


def load_goals(path: str | Path) -> Goals:
    raw, lines = read_yaml(path, what="the goals (see config/goals.yaml)")
    return parse_goals(raw, str(path), lines)


def parse_goals(raw: Any, source: str, lines: dict | None = None) -> Goals:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping (success, failure, min_trades, review), got {kind_of(raw)}")
    try:
        return Goals.model_validate(raw)
    except ValidationError as exc:
        problems = pydantic_problems(exc, prefix=(), model=Goals)
        raise ConfigError(format_problems(source, "invalid goals file", problems, lines or {})) from None
