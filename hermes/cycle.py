"""One Hermes cycle: observe, score, judge the running experiments, propose new ones, report.

Read-only until the user approves apply mode (never in the first cycle): a read-only cycle
records what it would do and changes nothing, on every path (no halt, no promotion, no
rollback, no experiment). In apply mode:

- every running experiment is judged on its own claim (`hermes.experiments.judge`); at most
  one is promoted per cycle (the one with the most evidence relative to its level), and the
  others are stopped, since their baseline is gone;
- a failing verdict halts the main book. Learning goes on: the experiments keep trading on
  paper, new ones start, aimed at the breached metric. Nothing is applied while the book is
  halted; the review proposes the fix its evidence supports (a promotion that passed, else a
  rollback to the last version that was not failing) and `trader resume` applies it;
- free slots (MAX_CHALLENGERS) are filled with new experiments, each at its share of the
  yearly error budget (`hermes.budget`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

import pandas as pd
from sqlalchemy import select

from trader.config import StrategyConfig, load_strategy_config
from trader.domain import split_symbol
from trader.goals import Goals
from trader.ledger import store
from trader.ledger.db import reports_dir
from trader.ledger.models import MAIN_BOOK, Experiment, Review, StrategyVersion
from trader.risk import halt, halted_reason

from . import budget, experiments, proposer
from .apply import apply_version
from .observe import equity_series, observe
from .scoring import score
from .types import CycleResult, ExperimentDecision, Proposal

log = logging.getLogger("hermes")

# the headline decision of a cycle, most important first
_RANK = {"promote": 0, "rollback": 1, "reject": 2, "expire": 3, "stop": 4, "continue": 5, "none": 6}


@dataclass
class CycleInputs:
    config_path: Path
    goals: Goals
    ohlcv: pd.DataFrame  # history up to `now`: the lookback window and the warm-up before it
    data_dir: Path
    now: datetime
    environ: Mapping[str, str] = field(default_factory=dict)
    claude_settings: object | None = None
    budget: int = 100  # candidate backtests per cycle
    progress: object | None = None  # progress(done, total) while the candidates are backtested
    chart: bool = True  # draw the review's chart (a simulation may skip it)


def mode_of(session) -> str:
    """apply only after `hermes approve`, which needs one read-only cycle first."""
    return "apply" if store.latest_approval(session, "hermes_apply") is not None else "read_only"


def run_cycle(factory, inputs: CycleInputs, book: str = MAIN_BOOK) -> CycleResult:
    text = Path(inputs.config_path).read_text(encoding="utf-8")
    config = load_strategy_config(inputs.config_path)
    goals, now = inputs.goals, inputs.now
    base, _ = split_symbol(config.symbol)
    since = now - timedelta(days=goals.review.lookback_days)
    with factory() as s:
        seen = observe(s, book, config.timeframe, base, since, now, config.risk.slippage)
        week = observe(s, book, config.timeframe, base, now - timedelta(days=7), now, config.risk.slippage)
        mode = mode_of(s)
    scorecard = score(goals, seen.metrics, week.metrics, seen.trades, seen.equity, goals.review.lookback_days,
                      seen.fees_paid, seen.slippage_realised, config.risk.slippage)
    apply = mode == "apply"
    failing = scorecard.verdict == "failing"

    with factory.begin() as s:
        store.ensure_version(s, config, text)
        halted = halted_reason(s, book)
        if failing and apply and halted is None:
            reason = f"Hermes: failure threshold breached ({_breached(scorecard)})"
            try:
                halt(s, book, reason)
                halted = reason
            except LookupError:
                pass  # the book has never traded: nothing to halt
        if apply:
            decisions = [experiments.judge(s, e, config, now) for e in experiments.running(s)]
        else:
            decisions = experiments.stop_all(s, now, "read-only: apply mode is not approved (or was revoked), "
                                                     "so no experiment runs")
        winner = _winner(decisions)
        rollback = _rollback(s, config, scorecard, apply) if failing else None
        if rollback is not None and rollback.challenger_version:
            target = s.get(StrategyVersion, rollback.challenger_version)
            rollback = rollback.model_copy(update={"evidence": _what_if(inputs, config, dict(target.settings))})

    fix = None
    if winner is not None and apply and halted is None:
        winner = winner.model_copy(update={"applied": True})
        text, config = apply_version(factory, inputs.config_path, inputs.data_dir, text, config, winner, now)
        gone = f"stopped: experiment #{winner.experiment_id} was promoted, so its baseline is gone"
        with factory.begin() as s:
            stopped = {d.experiment_id for d in experiments.stop_all(s, now, gone)}
        decisions = [winner] + [d.model_copy(update={"action": "stop", "reason": f"{gone} (its own verdict: {d.reason})"})
                                if d.experiment_id in stopped else d
                                for d in decisions if d.experiment_id != winner.experiment_id]
    elif winner is not None or rollback is not None:
        fix = winner or rollback  # proposed while halted (or read-only): `trader resume` applies it
    headline = min([*decisions, *([rollback] if rollback else [])], key=lambda d: _RANK[d.action],
                   default=ExperimentDecision(experiment_id=None, action="none", reason=(
                       "no experiment is running" if apply else
                       "read-only: Hermes observes and reports until hermes approve")))
    if winner is not None:
        headline = next(d for d in decisions if d.experiment_id == winner.experiment_id)

    proposals, screening, problem = _propose(factory, inputs, config, scorecard, apply)
    result = CycleResult(review_id=None, time=now, mode=mode, strategy_version=config.version,
                         scorecard=scorecard, decision=headline, decisions=tuple(decisions), halted=halted,
                         fix=fix, proposal=proposals[0] if proposals else None, proposals=tuple(proposals),
                         screening=screening)
    return _record(factory, inputs, result, book, problem)


def _breached(scorecard) -> str:
    return ", ".join(f"{g.metric} {g.value:.4g} vs {g.threshold:g}" for g in scorecard.goals
                     if g.status == "failing" and g.value is not None) or "a failure threshold"


def _winner(decisions: list[ExperimentDecision]) -> ExperimentDecision | None:
    """At most one promotion per cycle: the most evidence relative to its level."""
    passed = [d for d in decisions if d.action == "promote"]
    return max(passed, key=lambda d: d.evidence["e_value"] * d.evidence["alpha"]) if passed else None


def _rollback(s, config: StrategyConfig, scorecard, apply: bool) -> ExperimentDecision:
    breached = _breached(scorecard)
    halt = "the daemon is halted" if apply else "read-only: the daemon would be halted"
    target = s.scalars(select(Review.strategy_version).where(
        Review.verdict != "failing", Review.strategy_version != config.version).order_by(Review.id.desc())).first()
    if target is None:
        return ExperimentDecision(experiment_id=None, action="rollback", baseline_version=config.version,
                                  reason=f"failing ({breached}); {halt}; no earlier version that was not failing "
                                         "is known, so there is nothing to roll back to")
    return ExperimentDecision(experiment_id=None, action="rollback", baseline_version=config.version,
                              challenger_version=target,
                              reason=f"failing ({breached}); {halt}; roll back to {target}, the last version that "
                                     f"was not failing" + ("; trader resume applies it" if apply else ""))


def _what_if(inputs: CycleInputs, config: StrategyConfig, settings: dict) -> dict:
    """What the current and the rollback version would have done over the lookback window
    (backtests with the warm-up before it): the report shows both beside the proposed fix."""
    from trader.backtest import run_backtest
    from trader.config import parse_strategy_config

    target = parse_strategy_config(settings, "<rollback target>")
    since = inputs.now - timedelta(days=inputs.goals.review.lookback_days)
    warmup = max(proposer.warmup_needed(config), proposer.warmup_needed(target))
    first = int(inputs.ohlcv.index.searchsorted(pd.Timestamp(since)))
    if first < warmup or first >= len(inputs.ohlcv) - 2:
        return {}
    window = inputs.ohlcv.iloc[first - warmup:]
    out = {"window_days": inputs.goals.review.lookback_days}
    for name, version in (("current", config), ("rollback", target)):
        equity = run_backtest(window, version).equity.iloc[warmup - 1:]
        out[name] = experiments.window_metrics(equity, config.timeframe)
    return out


def claim_metric(scorecard) -> str:
    """The metric new experiments aim at: a breached failure metric first, else the weakest goal."""
    return breached_metric(scorecard) or scorecard.weakest or "sharpe"


def breached_metric(scorecard) -> str | None:
    for g in scorecard.goals:
        if g.kind == "failure" and g.status == "failing":
            return g.metric
    return None


def _propose(factory, inputs: CycleInputs, config: StrategyConfig, scorecard,
             apply: bool) -> tuple[list[Proposal], dict, str | None]:
    metric = claim_metric(scorecard)
    breach = breached_metric(scorecard) == metric
    now = inputs.now
    with factory() as s:
        live = experiments.running(s) if apply else []
        slots = experiments.MAX_CHALLENGERS - len(live)
        per_year = inputs.goals.review.false_promotions_per_year
        levels = budget.levels(s, now, slots, per_year) if apply else [None] * slots
        earned, spent, free = budget.available(s, now, per_year)
        refused = experiments.tried(s, config.version)
    screening = {"metric": metric, "budget": {"earned": earned, "spent": spent, "available": free,
                                              "per_year": per_year}, "slots": slots}
    if slots <= 0:
        return [], screening, None
    if not levels:
        return [], screening, (f"the error budget is spent until more weeks of operation earn it back "
                               f"({free:.2g} available)")
    # the stake only scales gains and losses alike: it answers a breach, never a success goal's drawdown
    skip = () if breach or metric != "max_drawdown" else ("stake_fraction",)
    variants = proposer.plan_variants(config, metric, refused, budget=inputs.budget, skip=skip)
    try:
        screen = proposer.evaluate(inputs.ohlcv, config, variants, metric,
                                   since=now - timedelta(days=inputs.goals.review.lookback_days),
                                   progress=inputs.progress)
    except proposer.HistoryTooShort as exc:
        return [], screening, str(exc)
    candidates = screen.candidates
    screening.update(candidates=len(candidates), qualified=len(proposer.qualified(candidates)),
                     folds=[[a.isoformat(), b.isoformat()] for a, b in screen.folds],
                     holdout=[screen.folds[-1][0].isoformat(), screen.folds[-1][1].isoformat()])
    chosen = proposer.choose(candidates, len(levels), busy=[e.variable for e in live])
    if apply and chosen:  # the income is shared by the experiments that really start
        with factory() as s:
            levels = budget.levels(s, now, len(chosen), per_year)
    problem = None if chosen else f"no candidate improved {metric} consistently ({len(candidates)} tried)"
    if chosen and inputs.environ.get("ANTHROPIC_API_KEY"):
        chosen, problem = _with_claude(inputs, config, scorecard, candidates, chosen, live)
    if apply and chosen:
        with factory.begin() as s:
            experiments.start(s, config, chosen, levels[:len(chosen)],
                              [experiments.holdout_prior(screen, p.version) for p in chosen], now, breach)
    return chosen, screening, problem


def _with_claude(inputs, config, scorecard, candidates, chosen, live):
    """Claude picks the first experiment among the qualified candidates; the rules fill the rest."""
    from .claude import choose_with_claude

    good = proposer.qualified(candidates)
    kwargs = {"settings": inputs.claude_settings} if inputs.claude_settings is not None else {}
    first, problem = choose_with_claude(scorecard, good, chosen[0], strategy_summary=_summary(config),
                                        environ=inputs.environ, **kwargs)
    rest = [p for p in proposer.choose(candidates, len(chosen), busy=[e.variable for e in live] + [first.variable])]
    return [first] + rest[:len(chosen) - 1], (f"Claude's answer was not used: {problem}" if problem else None)


def _record(factory, inputs: CycleInputs, result: CycleResult, book: str, problem: str | None) -> CycleResult:
    from .report import write_report

    with factory.begin() as s:
        review = Review(time=result.time, mode=result.mode, strategy_version=result.strategy_version,
                        verdict=result.scorecard.verdict, weakest=result.scorecard.weakest,
                        decision=result.decision.action, result={})
        s.add(review)
        s.flush()
        result = result.model_copy(update={"review_id": review.id})
        baseline = equity_series(s, book, since=inputs.now - timedelta(days=inputs.goals.review.lookback_days))
        shadows = {}
        for d in result.decisions:
            e = s.get(Experiment, d.experiment_id) if d.experiment_id else None
            if e is not None:
                shadows[f"#{e.id} {e.variable} {e.value:g}"] = equity_series(s, e.book, since=e.started_at)
        files = write_report(result, reports_dir(inputs.data_dir, factory.kw["bind"]), baseline, shadows, chart=inputs.chart)
        result = result.model_copy(update={"report_path": str(files.markdown)})
        review.result = result.model_dump(mode="json")
        review.report_path = str(files.markdown)
        review.report_markdown = files.markdown.read_text(encoding="utf-8")
        message = (f"review #{review.id} ({result.mode}): verdict {result.scorecard.verdict}, "
                   f"decision {result.decision.action}"
                   + (f", {len(result.proposals)} proposal(s): " + ", ".join(
                       f"{p.variable} -> {p.value:g}" for p in result.proposals) if result.proposals else "")
                   + (f"; {problem}" if problem else ""))
        store.record_event(s, "review", message, None, {"review_id": review.id})
    log.info("%s", message, extra={"event": "review", "report": str(files.markdown)})
    return result


def _summary(config: StrategyConfig) -> str:
    tunable = ", ".join(f"{k} in [{b.min:g}, {b.max:g}] step {b.step:g}" for k, b in config.tunable.items())
    return (f"{config.strategy} on {config.symbol} {config.timeframe}; params {config.params.model_dump()}; "
            f"risk {config.risk.model_dump()}; tunable: {tunable}")
