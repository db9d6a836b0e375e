"""Experiments: start challengers beside a control book, and judge each one's claim.

Every experiment trades two paper books from the moment it starts: the challenger (the
baseline with one variable changed) and a control (the baseline itself). Both are paper and
both start flat at the same bar, so the paired comparison measures the change and nothing
else: not live slippage, not a halt of the main book, not a position the main book already
held. Experiments started in the same cycle share one control.

The judgement (`judge`) is a sequential test of the experiment's claim (`hermes.sequential`),
started with the held-out walk-forward fold and continued by every shadow bar since:

- promote  when the claim's e-value reaches 1 / alpha (alpha: the experiment's share of the
           yearly error budget, `hermes.budget`), after at least MIN_DAYS and MIN_BARS of
           forward shadow trading, and, for a mechanical claim (less risk), when the
           challenger's risk-adjusted return is not clearly worse;
- reject   when the evidence that the challenger is *worse* at its claim reaches
           1 / REJECT_LEVEL (keeping the status quo needs no multiplicity correction);
- expire   when MAX_DAYS have passed and the evidence does not lean the claim's way (its
           e-value is below 1, where it began), or MAX_DAYS_LONG have passed whatever it shows
           (inconclusive; the value may be tried again once the baseline has changed). A weak
           real effect needs months of bars to reach 1 / alpha, and an experiment that runs
           on costs no more error budget, only a slot;
- continue otherwise.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from trader.backtest import kernel
from trader.config import StrategyConfig
from trader.ledger import store
from trader.ledger.models import Experiment
from trader.timeframes import bars_per_year

from . import sequential
from .observe import equity_series
from .types import ExperimentDecision, Proposal

MAX_CHALLENGERS = 3  # experiments in shadow at once
MIN_DAYS = 7  # of forward shadow trading before a promotion
MIN_BARS = 20  # of forward paired bars before a promotion (a week of daily candles is not enough)
MAX_DAYS = 56  # an experiment undecided after 8 weeks expires unless it leans the claim's way ...
MAX_DAYS_LONG = 182  # ... or has fewer than EXPIRE_BARS forward bars (daily candles); all end at 26 weeks
EXPIRE_BARS = 100
REJECT_LEVEL = 0.05  # evidence of harm needed to reject early (e-value 20)


def running(session: Session) -> list[Experiment]:
    return list(session.scalars(select(Experiment).where(Experiment.status == "running").order_by(Experiment.id)))


def tried(session: Session, baseline_version: str) -> dict[str, set[float]]:
    """Values already tried against this baseline, whatever came of them: not proposed again
    while it trades (a different baseline is a different question). Whatever came of them,
    because the outcomes were judged on recent bars that may lie in the next experiment's
    holdout fold: excluding only the losers there would pick the next candidate partly on
    that fold, and its test would not start out of sample."""
    out: dict[str, set[float]] = {}
    rows = session.scalars(select(Experiment).where(Experiment.baseline_version == baseline_version))
    for e in rows:
        out.setdefault(e.variable, set()).add(e.value)
    return out


def books(session: Session) -> dict[str, str]:
    """Every paper book the running experiments trade -> the strategy version it trades."""
    out: dict[str, str] = {}
    for e in running(session):
        out[e.book] = e.challenger_version
        if e.control_book:
            out[e.control_book] = e.baseline_version
    return out


def start(session: Session, config: StrategyConfig, proposals: list[Proposal], levels: list[float],
          priors: list[dict], now: datetime, breach: bool = False) -> list[Experiment]:
    """Start one challenger per proposal, with one control book shared by all of them; `breach`:
    their metric breaches a failure threshold (`sequential.claim_for`)."""
    stamp = f"{now:%y%m%d%H%M}"
    control = f"control-{config.version[:8]}-{stamp}"
    started = []
    for proposal, alpha, prior in zip(proposals, levels, priors):
        challenger = config.with_value(proposal.variable, proposal.value)
        claim = sequential.claim_for(proposal.metric, proposal.variable, breach)
        store.ensure_version(session, challenger)
        experiment = Experiment(
            book=f"shadow-{challenger.version[:8]}-{stamp}", control_book=control,
            baseline_version=config.version, challenger_version=challenger.version,
            variable=proposal.variable, baseline_value=proposal.baseline_value, value=proposal.value,
            status="running", variants_tried=proposal.candidates_tried, cycles=0, started_at=now,
            rationale=proposal.rationale, metric=claim.metric, statistic=claim.statistic, alpha=alpha, prior=prior)
        session.add(experiment)
        store.record_event(session, "experiment_started",
                           f"{proposal.variable} {_fmt(proposal.baseline_value)} -> {_fmt(proposal.value)} "
                           f"(claim: {claim.metric}, level {alpha:.2g}) in shadow book {experiment.book} "
                           f"beside control {control}", experiment.book)
        started.append(experiment)
    session.flush()
    return started


def _forward(session: Session, experiment: Experiment) -> pd.DataFrame:
    """The two books' equity on the bars both have recorded since the experiment started."""
    shadow = equity_series(session, experiment.book, since=experiment.started_at)
    control = equity_series(session, experiment.control_book, since=experiment.started_at)
    return pd.concat([shadow.rename("challenger"), control.rename("control")], axis=1, join="inner").dropna()


def judge(session: Session, experiment: Experiment, config: StrategyConfig, now: datetime) -> ExperimentDecision:
    """The verdict on one running experiment (its row is updated; nothing else changes)."""
    common = dict(experiment_id=experiment.id, baseline_version=experiment.baseline_version,
                  challenger_version=experiment.challenger_version, variable=experiment.variable,
                  value=experiment.value)
    if experiment.baseline_version != config.version:
        return _close(experiment, now, ExperimentDecision(action="stop", reason=(
            f"the strategy changed since the experiment began (baseline {experiment.baseline_version}, now "
            f"{config.version}): the comparison no longer answers a question about the strategy traded"), **common))
    if experiment.control_book is None or experiment.alpha is None:
        return _close(experiment, now, ExperimentDecision(action="stop", reason=(
            "started under an earlier promotion rule (no control book, no level): stopped; its value may be "
            "proposed again"), **common))
    claim = claim_of(experiment)
    joined = _forward(session, experiment)
    forward = joined.pct_change().dropna()
    prior = experiment.prior or {}
    prior_c = np.asarray(prior.get("challenger", []), dtype=float)
    prior_b = np.asarray(prior.get("control", []), dtype=float)
    c = np.r_[prior_c, forward["challenger"].to_numpy()]
    b = np.r_[prior_b, forward["control"].to_numpy()]
    result = sequential.evidence(claim.statistic, c, b)
    days = (joined.index[-1] - joined.index[0]).total_seconds() / 86400 if len(joined) > 1 else 0.0
    bars = len(forward)
    threshold = 1.0 / experiment.alpha
    evidence = {
        "claim": claim.metric, "statistic": claim.statistic, "effect": claim.effect, "why": claim.why,
        **result.as_dict(), "threshold": threshold, "alpha": experiment.alpha,
        "reject_threshold": 1.0 / REJECT_LEVEL, "forward_bars": bars, "prior_bars": int(prior_c.size),
        "days": round(days, 2), "min_days": MIN_DAYS, "min_bars": MIN_BARS, "max_days": MAX_DAYS,
        "max_days_long": MAX_DAYS_LONG,
        "challenger": window_metrics(joined["challenger"], config.timeframe),
        "control": window_metrics(joined["control"], config.timeframe),
    }
    experiment.cycles += 1
    experiment.evidence = evidence
    enough = days >= MIN_DAYS - 1e-9 and bars >= MIN_BARS
    where = (f"over {bars:,} forward bars ({days:.1f} days) and {prior_c.size:,} held-out bars, the "
             f"{claim.statistic.replace('_', ' ')} statistic averaged {result.mean:+.3e}")
    if result.e_value_worse >= 1.0 / REJECT_LEVEL:
        return _close(experiment, now, ExperimentDecision(action="reject", evidence=evidence, reason=(
            f"Reject: clearly worse at {claim.metric}: {where}; evidence of harm {result.e_value_worse:.3g} >= "
            f"{1 / REJECT_LEVEL:g}."), **common), "rejected")
    if enough and result.e_value >= threshold:
        if claim.metric == "max_drawdown":  # less risk, but not bought with a clearly worse Sharpe ratio
            guard = sequential.evidence("risk_adjusted_return", c, b)
            evidence["guard_e_value_worse"] = guard.e_value_worse
            if guard.e_value_worse >= 1.0 / REJECT_LEVEL:
                return _close(experiment, now, ExperimentDecision(action="reject", evidence=evidence, reason=(
                    f"Reject: less risk ({where}; e-value {result.e_value:.3g}) but clearly worse risk-adjusted "
                    f"return (evidence {guard.e_value_worse:.3g} >= {1 / REJECT_LEVEL:g})."), **common), "rejected")
        return ExperimentDecision(action="promote", evidence=evidence, reason=(
            f"Promote: {claim.metric} improved: {where}; e-value {result.e_value:.3g} >= {threshold:.3g} = 1/alpha "
            f"(tested with {claim.why})."), **common)
    leaning = result.e_value > 1.0  # the evidence has grown since the test began
    if days >= MAX_DAYS_LONG or (days >= MAX_DAYS and bars >= EXPIRE_BARS and not leaning):
        return _close(experiment, now, ExperimentDecision(action="expire", evidence=evidence, reason=(
            f"Expire: inconclusive after {days:.0f} days: {where}; e-value {result.e_value:.3g}, needed "
            f"{threshold:.3g}."), **common), "expired")
    if days >= MAX_DAYS:
        why = "it leans the claim's way" if leaning else f"fewer than {EXPIRE_BARS} forward bars"
        needs = f" ({why}, so it runs on, at most {MAX_DAYS_LONG} days)"
        return ExperimentDecision(action="continue", evidence=evidence, reason=(
            f"Continue: {where}; e-value {result.e_value:.3g} of the {threshold:.3g} needed{needs}."), **common)
    needs = ("" if enough else f" (a promotion needs {MIN_DAYS} days and {MIN_BARS} forward bars)")
    return ExperimentDecision(action="continue", evidence=evidence, reason=(
        f"Continue: {where}; e-value {result.e_value:.3g} of the {threshold:.3g} needed{needs}."), **common)


def claim_of(experiment: Experiment) -> sequential.Claim:
    """The claim an experiment made when it started (its statistic is stored with it)."""
    breach = experiment.statistic == sequential.CLAIMS["max_drawdown"][0]
    return sequential.claim_for(experiment.metric, experiment.variable, breach)


def _close(experiment: Experiment, now: datetime, decision: ExperimentDecision,
           status: str = "stopped") -> ExperimentDecision:
    experiment.status, experiment.decided_at = status, now
    return decision


def window_metrics(equity: pd.Series, timeframe: str) -> dict[str, float] | None:
    values = np.ascontiguousarray(equity.to_numpy(dtype=float))
    if values.size < 2:
        return None
    total, sharpe, _sortino, drawdown = kernel.equity_stats(values, float(values[0]), bars_per_year(timeframe))
    return {"total_return": float(total), "sharpe": float(sharpe), "max_drawdown": float(drawdown)}


def holdout_prior(screen, version: str) -> dict:
    challenger, control = screen.holdout_returns(version)
    start, end = screen.folds[-1]
    return {"start": start.isoformat(), "end": end.isoformat(),
            "challenger": [float(x) for x in challenger], "control": [float(x) for x in control]}


def stop_all(session: Session, now: datetime, reason: str, keep: int | None = None) -> list[ExperimentDecision]:
    """Stop every running experiment but `keep` (after a promotion their baseline is gone)."""
    out = []
    for e in running(session):
        if e.id == keep:
            continue
        out.append(_close(e, now, ExperimentDecision(
            experiment_id=e.id, action="stop", reason=reason, baseline_version=e.baseline_version,
            challenger_version=e.challenger_version, variable=e.variable, value=e.value)))
    return out


def _fmt(value) -> str:
    return "off" if value is None else f"{value:g}"
