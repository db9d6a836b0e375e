"""One Hermes cycle: observe, score, decide the running experiment, propose the next one,
report. Read-only until the user approves apply mode; never applies in its first cycle."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from sqlalchemy import select

from trader.config import StrategyConfig, load_strategy_config, parse_strategy_config
from trader.engine import split_symbol
from trader.goals import Goals
from trader.ledger import store
from trader.ledger.models import MAIN_BOOK, Approval, DaemonState, Experiment, Review, StrategyVersion

from . import proposer, stats
from .observe import equity_series, observe
from .scoring import score
from .types import CycleResult, ExperimentDecision, Proposal
from trader.files import write_atomically

from .versions import keep_previous, rewrite

log = logging.getLogger("hermes")

MAX_CYCLES = 4  # reviews an experiment may stay inconclusive before it is rejected
MIN_DAYS = 7  # of paired shadow trading before a promotion may be considered


@dataclass
class CycleInputs:
    config_path: Path
    goals: Goals
    ohlcv: pd.DataFrame  # history covering at least the lookback window, for walk-forward tests
    data_dir: Path
    now: datetime
    environ: Mapping[str, str] = field(default_factory=dict)
    claude_settings: object | None = None
    budget: int = 100  # candidate backtests per cycle
    progress: object | None = None  # progress(done, total) while the candidates are backtested


def spent_alpha(k: int, family: float = 0.05) -> float:
    """The error budget of the k-th experiment: family * 6 / (pi^2 k^2), summing to `family`."""
    return family * 6.0 / (math.pi ** 2 * k * k)


def mode_of(session) -> str:
    """apply only after `hermes approve`, which needs one read-only cycle first."""
    return "apply" if store.latest_approval(session, "hermes_apply") is not None else "read_only"


def running_experiment(session) -> Experiment | None:
    return session.scalars(select(Experiment).where(Experiment.status == "running")
                           .order_by(Experiment.id.desc())).first()


def rejected_values(session) -> dict[str, set[float]]:
    out: dict[str, set[float]] = {}
    for exp in session.scalars(select(Experiment).where(Experiment.status == "rejected")):
        out.setdefault(exp.variable, set()).add(exp.value)
    return out


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

    with factory.begin() as s:
        store.ensure_version(s, config, text)
        experiment = running_experiment(s)
        state = s.get(DaemonState, book)
        halted = state is not None and state.state == "halted"
        if scorecard.verdict == "failing":
            decision = _failing(s, config, experiment, apply, book, scorecard)
        elif halted and apply:
            # a halted baseline holds cash: comparing a trading challenger with it means nothing
            if experiment is not None:
                experiment.status, experiment.decided_at = "stopped", now
            decision = ExperimentDecision(experiment_id=experiment.id if experiment else None, action="none",
                                          reason=f"the daemon is halted ({state.reason}): no experiment runs "
                                                 "until `trader resume`")
        elif experiment is not None:
            decision = _judge(s, experiment, config, apply, book, now)
        else:
            decision = ExperimentDecision(experiment_id=None, action="none",
                                          reason="no experiment is running" if apply else
                                          "read-only: Hermes observes and reports until `hermes approve`")

    # the strategy the next experiment starts from
    if decision.applied and decision.action in ("promote", "rollback") and decision.challenger_version:
        text, config = _apply_version(factory, inputs, text, config, decision, now)
    proposal, problem, challenger_book = None, None, None
    still_running = decision.action == "continue"
    if scorecard.verdict != "failing" and not still_running:
        proposal, problem = _propose(factory, inputs, config, scorecard)
        if proposal is not None and apply and not halted:
            challenger_book = _start(factory, config, proposal, now)
    result = CycleResult(review_id=None, time=now, mode=mode, strategy_version=config.version,
                         scorecard=scorecard, decision=decision, proposal=proposal)
    return _record(factory, inputs, result, book, challenger_book, problem)


# -- deciding ---------------------------------------------------------------------------------


def _judge(s, experiment: Experiment, config: StrategyConfig, apply: bool, book: str, now: datetime) -> ExperimentDecision:
    common = dict(experiment_id=experiment.id, baseline_version=experiment.baseline_version,
                  challenger_version=experiment.challenger_version, variable=experiment.variable,
                  value=experiment.value)
    if experiment.baseline_version != config.version:
        experiment.status, experiment.decided_at = "stopped", now
        return ExperimentDecision(action="reject", applied=apply, reason=(
            f"the strategy file changed since the experiment began (baseline {experiment.baseline_version}, "
            f"now {config.version}): the comparison no longer holds"), **common)
    base = equity_series(s, book, since=experiment.started_at)
    shadow = equity_series(s, experiment.book, since=experiment.started_at)
    joined = pd.concat([base, shadow], axis=1, join="inner").dropna()
    returns = joined.pct_change().dropna().to_numpy()
    bars_per_day = 86400 / max((joined.index[1] - joined.index[0]).total_seconds(), 1) if len(joined) > 1 else 24
    # The shadow test runs on bars no candidate was selected on, so what it must correct for
    # is every forward test: the k-th experiment gets the share 6/(pi^2 k^2) of the 5% error
    # budget (the shares sum to 5% over the daemon's whole life), split by Šidák over the
    # reviews that may look at it. P(any false promotion, ever) <= 5% under the null.
    experiments = s.query(Experiment).filter(Experiment.id <= experiment.id).count()
    verdict = stats.decide(returns[:, 1] if len(returns) else np.array([]),
                           returns[:, 0] if len(returns) else np.array([]),
                           variants_tried=MAX_CYCLES, promotion_alpha=spent_alpha(experiments),
                           min_bars=int(MIN_DAYS * bars_per_day * 0.95),  # a week of paired returns
                           max_cycles=MAX_CYCLES, cycles_run=experiment.cycles + 1)
    verdict.evidence.update(experiments_so_far=experiments, candidates_screened=experiment.variants_tried)
    experiment.cycles += 1
    experiment.evidence = verdict.evidence
    if verdict.action != "continue":
        experiment.status = "promoted" if verdict.action == "promote" else "rejected"
        experiment.decided_at = now
    return ExperimentDecision(action=verdict.action, reason=verdict.reason, evidence=verdict.evidence,
                              applied=apply, **common)


def _failing(s, config: StrategyConfig, experiment: Experiment | None, apply: bool, book: str,
             scorecard) -> ExperimentDecision:
    breached = ", ".join(f"{g.metric} {g.value:.4g} vs {g.threshold:g}" for g in scorecard.goals
                         if g.status == "failing" and g.value is not None) or "a failure threshold"
    state = s.get(DaemonState, book)
    halt = "the daemon is halted" if apply else "read-only: the daemon would be halted"
    if apply and state is not None and state.state != "halted":
        state.state, state.reason = "halted", f"Hermes: failure threshold breached ({breached})"
        store.record_event(s, "halted", state.reason, book)
    if experiment is not None and apply:
        experiment.status = "stopped"
    target = s.scalars(select(Review.strategy_version).where(
        Review.verdict != "failing", Review.strategy_version != config.version).order_by(Review.id.desc())).first()
    if target is None:
        return ExperimentDecision(experiment_id=None, action="rollback", applied=False,
                                  baseline_version=config.version,
                                  reason=f"failing ({breached}); {halt}; no earlier version "
                                         f"that was not failing is known, so there is nothing to roll back to")
    return ExperimentDecision(experiment_id=None, action="rollback", applied=apply, baseline_version=config.version,
                              challenger_version=target,
                              reason=f"failing ({breached}); {halt}; roll back to {target}, "
                                     f"the last version that was not failing")


def _apply_version(factory, inputs: CycleInputs, text: str, config: StrategyConfig,
                   decision: ExperimentDecision, now: datetime) -> tuple[str, StrategyConfig]:
    """Make a promoted or rolled-back version the strategy file; keep the previous one."""
    with factory() as s:
        row = s.get(StrategyVersion, decision.challenger_version)
        settings = dict(row.settings)
    new = parse_strategy_config(settings, f"<version {decision.challenger_version}>")
    if decision.action == "promote":
        note = (f"promoted {decision.variable} {_fmt(config.value_of(decision.variable))} -> "
                f"{_fmt(decision.value)} (experiment #{decision.experiment_id}, {config.version} -> {new.version}): "
                f"{decision.reason}")
    else:
        note = f"rolled back {config.version} -> {new.version}: {decision.reason}"
    keep_previous(text, config.version, inputs.data_dir)
    new_text = rewrite(text, config, new, note, now)
    write_atomically(Path(inputs.config_path), new_text)
    with factory.begin() as s:
        store.ensure_version(s, new, new_text)
        kind = "promoted" if decision.action == "promote" else "rolled_back"
        store.record_event(s, kind, note, None, {"from": config.version, "to": new.version})
        consent = store.latest_approval(s, "hermes_apply")
        live = store.latest_approval(s, "live")
        if live is not None and live.strategy_version == config.version:
            if consent is not None and (consent.detail or {}).get("live"):
                s.add(Approval(kind="live", strategy_version=new.version,
                               detail={"inherited_from": config.version, "by": "hermes approve --live"}))
            else:
                store.record_event(s, "awaiting_approval",
                                   f"live trading of {new.version} needs `trader approve --live` "
                                   "(apply mode was approved without --live)")
    log.info("%s", note, extra={"event": "promoted" if decision.action == "promote" else "rolled_back"})
    return new_text, new


def _start(factory, config: StrategyConfig, proposal: Proposal, now: datetime) -> str:
    """Start the challenger: a shadow paper book trading the baseline with one change."""
    challenger = config.with_value(proposal.variable, proposal.value)
    book = f"shadow-{challenger.version[:8]}"
    with factory.begin() as s:
        store.ensure_version(s, challenger)
        s.add(Experiment(book=book, baseline_version=config.version, challenger_version=challenger.version,
                         variable=proposal.variable, baseline_value=proposal.baseline_value, value=proposal.value,
                         status="running", variants_tried=proposal.candidates_tried, cycles=0,
                         started_at=now, rationale=proposal.rationale))
        store.record_event(s, "experiment_started",
                           f"{proposal.variable} {_fmt(proposal.baseline_value)} -> {_fmt(proposal.value)} "
                           f"in shadow book {book}", book)
    return book


def _record(factory, inputs: CycleInputs, result: CycleResult, book: str, challenger_book: str | None,
            problem: str | None) -> CycleResult:
    from .report import write_report

    with factory.begin() as s:
        review = Review(time=result.time, mode=result.mode, strategy_version=result.strategy_version,
                        verdict=result.scorecard.verdict, weakest=result.scorecard.weakest,
                        decision=result.decision.action, result={})
        s.add(review)
        s.flush()
        result = result.model_copy(update={"review_id": review.id})
        baseline = equity_series(s, book, since=inputs.now - timedelta(days=inputs.goals.review.lookback_days))
        shadow_book = challenger_book or (result.decision.experiment_id and s.get(Experiment, result.decision.experiment_id).book)
        challenger = equity_series(s, shadow_book, since=baseline.index[0] if len(baseline) else None) \
            if shadow_book else None
        files = write_report(result, Path(inputs.data_dir) / "reports", baseline,
                             challenger if challenger is not None and len(challenger) else None)
        result = result.model_copy(update={"report_path": str(files.markdown)})
        review.result = result.model_dump(mode="json")
        review.report_path = str(files.markdown)
        review.report_markdown = files.markdown.read_text(encoding="utf-8")
        message = (f"review #{review.id} ({result.mode}): verdict {result.scorecard.verdict}, "
                   f"decision {result.decision.action}"
                   + (f", proposal {result.proposal.variable} -> {result.proposal.value:g}" if result.proposal else "")
                   + (f"; {problem}" if problem else ""))
        store.record_event(s, "review", message, None, {"review_id": review.id})
    log.info("%s", message, extra={"event": "review", "report": str(files.markdown)})
    return result


def _fmt(value) -> str:
    return "off" if value is None else f"{value:g}"


def _propose(factory, inputs: CycleInputs, config: StrategyConfig, scorecard) -> tuple[Proposal | None, str | None]:
    metric = scorecard.weakest or "sharpe"
    with factory() as s:
        refused = rejected_values(s)
    variants = proposer.plan_variants(config, metric, refused, budget=inputs.budget)
    window = inputs.ohlcv[inputs.ohlcv.index >= inputs.now - timedelta(days=inputs.goals.review.lookback_days)]
    candidates = proposer.evaluate(window, config, variants, metric, progress=inputs.progress)
    rules_choice = proposer.choose(candidates, metric)
    if rules_choice is None:
        return None, f"no candidate improved {metric} consistently ({len(candidates)} tried)"
    if inputs.environ.get("ANTHROPIC_API_KEY"):
        from .claude import choose_with_claude

        good = [c for c in candidates if c.improvement > 0 and c.folds_better >= proposer.MIN_FOLDS_BETTER]
        kwargs = {"settings": inputs.claude_settings} if inputs.claude_settings is not None else {}
        chosen, problem = choose_with_claude(scorecard, good, rules_choice, strategy_summary=_summary(config),
                                             environ=inputs.environ, **kwargs)
        return chosen, (f"Claude's answer was not used: {problem}" if problem else None)
    return rules_choice, None


def _summary(config: StrategyConfig) -> str:
    tunable = ", ".join(f"{k} in [{b.min:g}, {b.max:g}] step {b.step:g}" for k, b in config.tunable.items())
    return (f"{config.strategy} on {config.symbol} {config.timeframe}; params {config.params.model_dump()}; "
            f"risk {config.risk.model_dump()}; tunable: {tunable}")
