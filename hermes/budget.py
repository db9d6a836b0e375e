"""How much error Hermes may spend on new experiments: a bound on false promotions per year.

Every experiment is tested at its own level alpha_j (`hermes.experiments`): under the null
(the change does not improve its claim) the chance that it is ever promoted is at most
alpha_j, however long it runs and however often it is looked at (Ville's inequality for
its e-process). The levels are paid from an income of ALPHA_PER_YEAR per 52 weeks of
operation, counted from the first review: an experiment takes a share of the income not yet
spent when it starts. So, by linearity of expectation,

    E[false promotions in the first T weeks] <= ALPHA_PER_YEAR * T / 52

for every T, whatever the dependence between experiments. In particular the chance of any
false promotion in the first year of a market where nothing works is at most 5 %.

Unlike a lifetime budget split over all future experiments (the k-th getting ~1/k^2 of
it), the level of an experiment does not shrink with the number of experiments before it:
Hermes can keep learning for years at the same rate. Income not spent (weeks without a free
slot, read-only weeks after the first review) is kept for later experiments, but one
experiment takes at most MAX_SHARE of a year's income.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trader.ledger.models import Experiment, Review

ALPHA_PER_YEAR = 0.05  # expected false promotions per year, at most (goals.yaml review.false_promotions_per_year)
MAX_SHARE = 0.25  # of a year's income, for any one experiment
MIN_LEVEL = ALPHA_PER_YEAR / 52 / 6  # below this an experiment could hardly ever pass: start fewer
WEEK = 7 * 86400


def income(first_review: datetime | None, now: datetime, per_year: float = ALPHA_PER_YEAR) -> float:
    if first_review is None:
        return 0.0
    weeks = max(0.0, (now - first_review).total_seconds() / WEEK)
    return per_year * weeks / 52


def available(session: Session, now: datetime, per_year: float = ALPHA_PER_YEAR) -> tuple[float, float, float]:
    """(income so far, spent so far, available now)."""
    first = session.scalar(select(func.min(Review.time)))
    earned = income(first, now, per_year)
    spent = float(session.scalar(select(func.coalesce(func.sum(Experiment.alpha), 0.0))) or 0.0)
    return earned, spent, max(0.0, earned - spent)


def levels(session: Session, now: datetime, slots: int, per_year: float = ALPHA_PER_YEAR) -> list[float]:
    """The level of each of `slots` experiments starting now: equal shares of what is available."""
    if slots <= 0:
        return []
    _earned, _spent, free = available(session, now, per_year)
    while slots > 0 and free / slots < MIN_LEVEL * per_year / ALPHA_PER_YEAR:
        slots -= 1
    return [min(free / slots, per_year * MAX_SHARE)] * slots if slots else []
