"""How much error Hermes may spend on new experiments: a bound on false promotions per year.

Every experiment is tested at its own level alpha_j (`hermes.experiments`): under the null
(the change does not improve its claim) the chance that it is ever promoted is at most
alpha_j, however long it runs and however often it is looked at (Ville's inequality for
its e-process K). The levels are paid from an income of `per_year` (goals.yaml
review.false_promotions_per_year, default 0.05) per 52 weeks of operation, counted from the
first review. So, by linearity of expectation,

    E[false promotions in the first T weeks] <= per_year * max(T, ADVANCE_WEEKS) / 52

whatever the dependence between experiments: at most `per_year` in the first year, and the
same rate every year after. The level of an experiment does not shrink with the number of
experiments before it (a lifetime budget split over all future experiments gives the k-th
~1/k^2 of it): Hermes keeps learning for years at the same rate.

Three rules make the budget go further without weakening the bound:

- **Half a year in advance.** The first ADVANCE_WEEKS of income are there at the first
  review, so the first experiments get levels they can reach within the 26 weeks one may
  run (a week's income split three ways asks an e-value of ~3,000; a weak but real effect
  never gets there).
- **Refunds.** An experiment closed without a promotion gives back alpha_j * min(K_tau, 1),
  K_tau its e-value at the last look. Optional stopping of the supermartingale K at that look
  gives (1/alpha_j) P(promoted) + E[K_tau; not promoted] <= 1, so its chance of a false
  promotion is at most alpha_j - E[alpha_j min(K_tau, 1); not promoted]: what is refunded was
  never at risk. An experiment stopped because another was promoted, or never looked at,
  gives back (nearly) all of its level; one that drifted to K ~ 0 gives back nothing.
- **The best-screened candidate gets more.** The level of each experiment starting now is
  its share of what is available, twice as much for the first (the proposer's strongest
  candidate on the screening folds, data from before its test starts), at most MAX_SHARE of
  a year's income for any one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trader.ledger.models import Experiment, Review

ALPHA_PER_YEAR = 0.05  # expected false promotions per year, at most (goals.yaml review.false_promotions_per_year)
ADVANCE_WEEKS = 26  # income available at the first review
MAX_SHARE = 0.25  # of a year's income, for any one experiment
MIN_LEVEL = ALPHA_PER_YEAR / 52 / 6  # below this an experiment could hardly ever pass: start fewer
LEAD_WEIGHT = 2.0  # the first proposal's share relative to each of the others
WEEK = 7 * 86400


def income(first_review: datetime | None, now: datetime, per_year: float = ALPHA_PER_YEAR) -> float:
    if first_review is None:
        return 0.0
    weeks = max(0.0, (now - first_review).total_seconds() / WEEK)
    return per_year * max(weeks, ADVANCE_WEEKS) / 52


def cost(alpha: float | None, status: str, evidence: dict | None) -> float:
    """What an experiment has spent of the budget: its level while it runs or once promoted,
    the level less its refund alpha * min(K, 1) once closed otherwise (see the module)."""
    alpha = float(alpha or 0.0)
    if status in ("running", "promoted"):
        return alpha
    e_value = (evidence or {}).get("e_value", 1.0)  # never looked at: K is still 1
    return alpha * (1.0 - min(max(float(e_value), 0.0), 1.0))


def available(session: Session, now: datetime, per_year: float = ALPHA_PER_YEAR) -> tuple[float, float, float]:
    """(income so far, spent so far, available now)."""
    first = session.scalar(select(func.min(Review.time)))
    earned = income(first, now, per_year)
    rows = session.execute(select(Experiment.alpha, Experiment.status, Experiment.evidence)
                           .where(Experiment.alpha.is_not(None)))
    spent = sum(cost(*row) for row in rows)
    return earned, spent, max(0.0, earned - spent)


def levels(session: Session, now: datetime, slots: int, per_year: float = ALPHA_PER_YEAR) -> list[float]:
    """The levels of `slots` experiments starting now, in the proposer's order: shares of what is
    available, LEAD_WEIGHT for the first and 1 for each other, each at most MAX_SHARE of a year."""
    if slots <= 0:
        return []
    _earned, _spent, free = available(session, now, per_year)
    floor = MIN_LEVEL * per_year / ALPHA_PER_YEAR
    while slots > 0:
        weights = [LEAD_WEIGHT] + [1.0] * (slots - 1)
        share = [min(free * w / sum(weights), per_year * MAX_SHARE) for w in weights]
        if min(share) >= floor:
            return share
        slots -= 1
    return []
