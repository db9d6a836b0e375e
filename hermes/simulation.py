"""`hermes simulate`: the daemon and its weekly review in fast-forward over a history file.

One replay of the candles through the real `Engine`, bar by bar, trading several books in one
ledger, so the policies see exactly the same bars:

- `main`: the strategy Hermes evolves. Its file lives in the work directory; `run_cycle`
  runs at every fire time of the goals' review cron, read-only first, then in apply mode
  (approved after the first review, as `hermes approve` would be);
- every running experiment's challenger and control books: the daemon's shadow engines;
- `fixed`: the starting strategy, never changed;
- `reoptimized`: at every review all tunables re-optimised jointly on the lookback window
  (the best Sharpe ratio of a coarse grid), traded until the next review: the naive
  alternative Hermes must beat.

The three policies trade with the goals' kill switch, and a failing review halts each of
them alike (Hermes' verdict halts its book; the others are halted the same way). At each
review a halted policy is resumed, as a user reading the weekly report would do: Hermes' book
with the fix its review proposed (`trader resume`), the others as they are. A policy's
*breaches* are the reviews at which its lookback window breached a failure threshold, scored
the same way for all three.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from sqlalchemy import select

from trader.backtest import sweep
from trader.brokers import PaperBroker
from trader.config import StrategyConfig, load_strategy_config
from trader.domain import split_symbol
from trader.engine import Engine
from trader.errors import ConfigError
from trader.feeds import ReplayFeed
from trader.goals import Goals
from trader.ledger import open_ledger
from trader.ledger.models import MAIN_BOOK, Approval, Experiment, StrategyVersion
from trader.ledger.replay import GroupCommit
from trader.risk import halt, halted_reason, resume
from trader.timeframes import timeframe_seconds

from . import experiments
from .apply import apply_pending_fix
from .cycle import CycleInputs, run_cycle
from .observe import equity_series, observe
from .proposer import warmup_needed
from .scoring import score
from .types import CycleResult

POLICIES = ("hermes", "fixed", "reoptimized")
BOOKS = {"hermes": MAIN_BOOK, "fixed": "fixed", "reoptimized": "reoptimized"}
MIN_REVIEWS = 2  # a read-only review and one in apply mode


class TooShort(ValueError):
    """The history cannot hold the lookback window, the warm-up and two reviews."""


@dataclass(frozen=True)
class CycleRecord:
    index: int  # 0: the first, read-only cycle
    time: datetime
    result: CycleResult
    version: str  # the strategy version traded after this cycle (and the resume that may follow it)
    values: dict[str, Any]  # its tunable variables
    applied_at_resume: str | None = None  # the fix `trader resume` applied after a halted review

    @property
    def decision(self):
        return self.result.decision

    @property
    def promoted(self):
        """The promotion this cycle made: in the review, or as the fix applied at the resume after it."""
        if self.applied_at_resume and self.result.fix is not None and self.result.fix.action == "promote":
            return self.result.fix
        return next((d for d in self.result.decisions if d.action == "promote" and d.applied), None)

    @property
    def rolled_back(self) -> bool:
        return bool(self.applied_at_resume) and self.result.fix is not None and self.result.fix.action == "rollback"


@dataclass
class SimulationResult:
    cycles: list[CycleRecord]
    experiments: list[dict[str, Any]]  # every experiment in the ledger, oldest first
    equity: dict[str, pd.Series]  # policy -> equity per bar
    breaches: dict[str, int]  # policy -> reviews with a failure threshold breached
    halts: dict[str, int]  # policy -> kill-switch halts
    reoptimized: list[dict[str, Any]]  # per review: time and the values the naive policy trades next
    initial: StrategyConfig
    timeframe: str
    workdir: Path

    @property
    def promotions(self) -> list[CycleRecord]:
        return [c for c in self.cycles if c.promoted is not None]

    @property
    def first_review(self) -> datetime:
        return self.cycles[0].time

    def trajectory(self, variable: str) -> list[Any]:
        """The variable's value before the first cycle and after each one."""
        return [self.initial.value_of(variable)] + [c.values[variable] for c in self.cycles]

    def metrics(self, since: datetime | None = None) -> dict[str, dict[str, float]]:
        """Total return, Sharpe and max drawdown of each policy from `since` (the first review)."""
        since = since or self.first_review
        return {p: window_metrics(self.equity[p], since, self.timeframe) for p in self.equity}


def window_metrics(equity: pd.Series, since, timeframe: str) -> dict[str, float]:
    """Total return, Sharpe and max drawdown from the equity at `since` on (the backtester's
    definitions, as for an experiment's books)."""
    part = equity[equity.index >= pd.Timestamp(since)]
    found = experiments.window_metrics(part, timeframe) or {"total_return": 0.0, "sharpe": 0.0, "max_drawdown": 0.0}
    return {**found, "bars": int(len(part))}


def review_times(frame: pd.DataFrame, cron: str, first: pd.Timestamp, bar: timedelta) -> list[int]:
    """Bar positions (exclusive ends) at which the cron fires from `first` on: a review at
    time T sees the bars that closed by T."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(cron, timezone="UTC")
    closes = frame.index + bar
    last = closes[-1].to_pydatetime()
    ends, at = [], trigger.get_next_fire_time(None, first.to_pydatetime())
    while at is not None and at <= last:
        end = int(closes.searchsorted(pd.Timestamp(at), side="right"))
        if end > 0 and (not ends or end > ends[-1]):
            ends.append(end)
        at = trigger.get_next_fire_time(at, at + timedelta(seconds=1))
    return ends


def plan(frame: pd.DataFrame, config: StrategyConfig, goals: Goals) -> tuple[int, list[int]]:
    """(first bar traded, review ends): trading starts after the warm-up, reviewing once the
    lookback window is filled. TooShort says how much history is needed."""
    warmup = warmup_needed(config)
    need = timedelta(days=goals.review.lookback_days + 14)
    if len(frame) <= warmup + 2 or frame.index[-1] - frame.index[min(warmup, len(frame) - 1)] < need:
        have = (frame.index[-1] - frame.index[0]).days if len(frame) > 1 else 0
        raise TooShort(
            f"the candles cover {have} days ({len(frame):,} bars); a simulation needs the strategy's warm-up "
            f"({warmup} bars) plus the goals' lookback ({goals.review.lookback_days} days) plus two weekly reviews "
            f"(14 days): at least {warmup} bars and {goals.review.lookback_days + 14} days after them")
    first_review = frame.index[warmup] + timedelta(days=goals.review.lookback_days)
    ends = review_times(frame, goals.review.cron, first_review, timedelta(seconds=timeframe_seconds(config.timeframe)))
    if len(ends) < MIN_REVIEWS:
        raise TooShort(f"the review cron {goals.review.cron!r} fires {len(ends)} time(s) after the lookback window "
                       f"is filled; a simulation needs at least {MIN_REVIEWS}")
    return warmup, ends


class _Books:
    """Engines by book on one ledger; `tick` moves all of them over one bar."""

    def __init__(self, factory, quote: str):
        self.factory, self.quote = factory, quote
        self.engines: dict[str, Engine] = {}

    def open(self, book: str, config: StrategyConfig, goals: Goals | None) -> Engine:
        engine = Engine(config=config, goals=goals, sessions=self.factory, broker=PaperBroker(self.quote), book=book)
        self.engines[book] = engine
        return engine

    def sync_shadows(self) -> None:
        """The daemon's rule: one paper engine per book of a running experiment."""
        from trader.config import parse_strategy_config

        with self.factory() as s:
            wanted = {}
            for book, version in experiments.books(s).items():
                wanted[book] = parse_strategy_config(dict(s.get(StrategyVersion, version).settings), f"<{book}>")
        for book in [b for b in self.engines if b.startswith(("shadow-", "control-")) and b not in wanted]:
            self.engines.pop(book).close()
        for book, config in wanted.items():
            if book not in self.engines:
                self.open(book, config, None)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()


def simulate(frame: pd.DataFrame, config_path: Path, goals: Goals, workdir: Path, *, budget: int = 100,
             policies: tuple[str, ...] = POLICIES, progress: Callable[[int, int], None] | None = None,
             points: int = 5) -> SimulationResult:
    """Replay `frame` through the daemon with weekly Hermes reviews (see the module docstring).
    `config_path` is the strategy file Hermes rewrites (a copy: it will be changed). `budget`
    is each review's backtest budget, as the daemon's; `points` the re-optimisation grid's values
    per tunable; `policies` which books trade (Hermes' alone, ("hermes",), answers "what would
    Hermes have done" in a fraction of the time: the comparison books cost the most)."""
    quiet = [logging.getLogger(name) for name in ("trader", "hermes")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # every simulated halt and promotion is in the result, not the log
        logger.setLevel(logging.ERROR)
    try:
        return _simulate(frame, config_path, goals, Path(workdir), budget, policies, progress, points)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)


def _simulate(frame, config_path, goals, workdir, budget, policies, progress, points) -> SimulationResult:
    initial = load_strategy_config(config_path)
    start, ends = plan(frame, initial, goals)
    ledger = open_ledger(f"sqlite:///{workdir / 'ledger.db'}")
    batch = GroupCommit(ledger, every=5000)
    factory = batch.sessions
    books = _Books(factory, split_symbol(initial.symbol)[1])
    # the daemon's window (trader.daemon.lookback_for) at any value of the tunables: recursive
    # indicators (EMA, RSI) must forget their seed to agree with the backtests Hermes screens on
    feed = ReplayFeed(frame, max(10 * warmup_needed(initial), 500)).views(start)
    records: list[CycleRecord] = []
    naive: list[dict[str, Any]] = []
    breaches = {p: 0 for p in policies}
    configs = {"fixed": initial, "reoptimized": initial}
    try:
        if "hermes" in policies:
            books.open(MAIN_BOOK, initial, goals)
        for p in ("fixed", "reoptimized"):
            if p in policies:
                books.open(BOOKS[p], initial, goals)
        position, total = start, len(frame) - start
        bar = timedelta(seconds=timeframe_seconds(initial.timeframe))
        for k, end in enumerate(ends + [len(frame)]):
            for view in itertools.islice(feed, end - position):
                for engine in list(books.engines.values()):
                    engine.tick(view, now=view.next_time)
                batch.tick_done()
            if progress is not None:
                progress(end - start, total)
            position = end
            if k == len(ends):
                break
            now = frame.index[end - 1].to_pydatetime() + bar
            for p in policies:
                failing = _failing(factory, BOOKS[p], initial, goals, now)
                breaches[p] += failing
                if failing and k > 0 and p != "hermes":
                    # like for like: Hermes' failing review halts its book (apply mode); the
                    # others' failing reviews halt theirs, and all are resumed below alike
                    with factory.begin() as s:
                        if halted_reason(s, BOOKS[p]) is None:
                            halt(s, BOOKS[p], "a failing review (as Hermes' verdict halts its book)")
            if "hermes" in policies:
                records.append(_review(factory, config_path, goals, frame.iloc[:end], workdir, now, k, budget))
                engine = books.engines[MAIN_BOOK]
                after = load_strategy_config(config_path)
                if after.version != engine.config.version:
                    engine.use_config(after)
                books.sync_shadows()
            if "reoptimized" in policies:
                choice = _reoptimise(frame.iloc[:end], configs["reoptimized"], goals, now, points)
                naive.append({"time": now, **{n: choice.value_of(n) for n in choice.tunable}})
                if choice.version != configs["reoptimized"].version:
                    books.engines["reoptimized"].use_config(choice)
                    configs["reoptimized"] = choice
            applied = _resume_halted(factory, config_path, workdir, policies, now)
            if "hermes" in policies:
                after = load_strategy_config(config_path)
                if after.version != books.engines[MAIN_BOOK].config.version:
                    books.engines[MAIN_BOOK].use_config(after)
                    books.sync_shadows()
                records[-1] = replace(records[-1], applied_at_resume=applied, version=after.version,
                                      values={name: after.value_of(name) for name in after.tunable})
        batch.commit()
        with factory() as s:
            equity = {p: equity_series(s, BOOKS[p]) for p in policies}
            halts = {p: _halts(s, BOOKS[p]) for p in policies}
            found = _experiments(s)
    finally:
        books.close()
        batch.close()
        ledger.dispose()
    return SimulationResult(cycles=records, experiments=found, equity=equity, breaches=breaches, halts=halts,
                            reoptimized=naive, initial=initial, timeframe=initial.timeframe, workdir=workdir)


def _review(factory, config_path: Path, goals: Goals, history: pd.DataFrame, workdir: Path, now: datetime,
            k: int, budget: int) -> CycleRecord:
    result = run_cycle(factory, CycleInputs(config_path=config_path, goals=goals, ohlcv=history, data_dir=workdir,
                                            now=now, budget=budget, chart=False))
    if k == 0:
        with factory.begin() as s:  # `hermes approve`, after one read-only review
            s.add(Approval(kind="hermes_apply", detail={"live": False, "by": "hermes simulate"}))
    after = load_strategy_config(config_path)
    return CycleRecord(index=k, time=now, result=result, version=after.version,
                       values={name: after.value_of(name) for name in after.tunable})


def _resume_halted(factory, config_path: Path, workdir: Path, policies, now: datetime) -> str | None:
    """Resume every halted policy, as a user reading the weekly report would; Hermes' with the
    fix its review proposed. What `trader resume` applied to Hermes' book, if anything."""
    applied = None
    for p in policies:
        with factory() as s:
            halted = halted_reason(s, BOOKS[p]) is not None
        if not halted:
            continue
        note = apply_pending_fix(factory, config_path, workdir, BOOKS[p], now) if p == "hermes" else None
        applied = note if p == "hermes" else applied
        with factory.begin() as s:
            resume(s, BOOKS[p], "resumed at the weekly review (hermes simulate)"
                      + (f"; applied {note}" if note else ""))
    return applied


def _failing(factory, book: str, config: StrategyConfig, goals: Goals, now: datetime) -> int:
    base, _ = split_symbol(config.symbol)
    with factory() as s:
        seen = observe(s, book, config.timeframe, base, now - timedelta(days=goals.review.lookback_days), now,
                       config.risk.slippage)
    card = score(goals, seen.metrics, seen.metrics, seen.trades, seen.equity, goals.review.lookback_days,
                 seen.fees_paid, seen.slippage_realised, config.risk.slippage)
    return int(card.verdict == "failing")


def _halts(s, book: str) -> int:
    from trader.ledger.models import Event

    return len(list(s.scalars(select(Event.id).where(Event.book == book, Event.kind == "halted"))))


def coarse_grid(config: StrategyConfig, points: int = 5) -> list[StrategyConfig]:
    """Every valid combination of `points` values per tunable, spread over its bounds on its step grid."""
    axes = []
    for name, b in config.tunable.items():
        steps = int(math.floor((b.max - b.min) / b.step + 1e-9))
        picks = sorted({int(round(i)) for i in np.linspace(0, steps, min(points, steps + 1))})
        values = [round(b.min + i * b.step, 10) for i in picks]
        axes.append([(name, int(v) if isinstance(config.value_of(name), int) else v) for v in values])
    out = []
    for combo in itertools.product(*axes):
        try:
            out.append(config.with_values(dict(combo)))
        except ConfigError:
            continue  # e.g. fast >= slow
    return out


def _reoptimise(history: pd.DataFrame, current: StrategyConfig, goals: Goals, now: datetime,
                points: int) -> StrategyConfig:
    """The naive policy: the best in-sample Sharpe of the coarse grid on the lookback window."""
    grid = coarse_grid(current, points)
    warmup = warmup_needed(current)
    first = int(history.index.searchsorted(pd.Timestamp(now - timedelta(days=goals.review.lookback_days))))
    window = history.iloc[max(0, first - warmup):]
    table = sweep(window, current, grid)
    scores = table["sharpe"].astype(float).fillna(-math.inf).to_numpy()
    return grid[int(np.argmax(scores))]


def _experiments(s) -> list[dict[str, Any]]:
    out = []
    for e in s.scalars(select(Experiment).order_by(Experiment.id)):
        out.append(dict(id=e.id, variable=e.variable, value=e.value, baseline_value=e.baseline_value,
                        status=e.status, metric=e.metric, alpha=e.alpha, cycles=e.cycles,
                        started_at=e.started_at, decided_at=e.decided_at, evidence=dict(e.evidence or {}),
                        baseline_settings=dict(s.get(StrategyVersion, e.baseline_version).settings),
                        challenger_settings=dict(s.get(StrategyVersion, e.challenger_version).settings)))
    return out


def changed_leaves(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every setting that differs between two config dicts."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_leaves(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
