"""Making a decided version the strategy the daemon trades: a promotion, a rollback, or the
fix a review proposed while the daemon was halted (applied by `trader resume`)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from trader.config import StrategyConfig, load_strategy_config, parse_strategy_config
from trader.files import write_atomically
from trader.ledger import store
from trader.ledger.models import Approval, DaemonState, Experiment, Review, StrategyVersion
from trader.risk import halted_reason

from .types import ExperimentDecision
from .versions import keep_previous, rewrite

log = logging.getLogger("hermes")


def apply_version(factory, config_path: Path, data_dir: Path, text: str, config: StrategyConfig,
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
    keep_previous(text, config.version, data_dir)
    new_text = rewrite(text, config, new, note, now)
    write_atomically(Path(config_path), new_text)
    with factory.begin() as s:
        store.ensure_version(s, new, new_text)
        if decision.action == "promote" and decision.experiment_id is not None:
            experiment = s.get(Experiment, decision.experiment_id)
            experiment.status, experiment.decided_at = "promoted", now
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
    log.info("%s", note, extra={"event": kind})
    return new_text, new


def pending_fix(session, book: str) -> ExperimentDecision | None:
    """The fix the latest review proposed for the halted book, if it still applies: apply mode
    is approved, its baseline is the version traded, and a promoted experiment still runs."""
    if halted_reason(session, book) is None or store.latest_approval(session, "hermes_apply") is None:
        return None
    state = session.get(DaemonState, book)
    review = session.scalars(select(Review).order_by(Review.id.desc())).first()
    # a fix a read-only review described is what it would have done, not a proposal to apply
    fix = (review.result or {}).get("fix") if review is not None and review.mode == "apply" else None
    if not fix:
        return None
    decision = ExperimentDecision.model_validate(fix)
    if decision.baseline_version != state.strategy_version or decision.challenger_version is None:
        return None
    if decision.action == "promote":
        experiment = session.get(Experiment, decision.experiment_id)
        if experiment is None or experiment.status != "running":
            return None
    return decision


def apply_pending_fix(factory, config_path: Path, data_dir: Path, book: str, now: datetime) -> str | None:
    """`trader resume`: apply the fix a review proposed while halted. What was applied, or None."""
    with factory() as s:
        decision = pending_fix(s, book)
    if decision is None:
        return None
    config = load_strategy_config(config_path)
    if config.version != decision.baseline_version:
        return None  # the user edited the file since: their edit wins
    text = Path(config_path).read_text(encoding="utf-8")
    _, new = apply_version(factory, config_path, data_dir, text, config, decision, now)
    if decision.action == "promote":
        from .experiments import stop_all

        with factory.begin() as s:
            stop_all(s, now, f"experiment #{decision.experiment_id} was promoted at resume: the baseline changed")
    return f"{decision.action} {config.version} -> {new.version}: {decision.reason}"


def _fmt(value) -> str:
    return "off" if value is None else f"{value:g}"


def resume_book(factory, config_path: Path, data_dir: Path, book: str, now: datetime, *, keep: bool = False,
                reason: str | None = None) -> str:
    """`trader resume` and the dashboard's resume: apply the fix a review proposed while halted
    (unless `keep`), then trade again from the next tick. What was done, in words."""
    from trader.domain import TradingState
    from trader.ledger.models import DaemonState
    from trader.risk import resume

    with factory() as s:
        state = s.get(DaemonState, book)
        if state is not None and state.state != TradingState.HALTED:
            return "not halted: nothing to resume"  # nothing recorded, the drawdown's peak kept
        fix = pending_fix(s, book)
    said = ""
    if fix is not None and not keep:
        applied = apply_pending_fix(factory, config_path, data_dir, book, now)
        said = (f"applied Hermes' fix: {applied}\n" if applied else
                "Hermes' fix no longer applies (the strategy file changed since the review): resuming as it is\n")
    elif fix is not None:
        said = f"kept the current version; Hermes' proposed fix was not applied: {fix.action} {fix.challenger_version}\n"
    with factory.begin() as s:
        resume(s, book, reason)  # LookupError: the book has never run
    return said + "resumed: the daemon trades again from its next tick"
