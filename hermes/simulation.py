"""Does Hermes learn, or wander? Many weekly cycles on replayed history, end to end.

`simulate` is the daemon in fast-forward: a strategy file and a SQLite ledger in a work
directory, the frame replayed bar by bar through the real `Engine` (the baseline book and the
shadow book of every running challenger, paper broker), and the real `run_cycle` at the end of
every week, with apply mode approved after the first (read-only) cycle. Nothing in Hermes is
stubbed: proposals, shadow trading, the statistical decision, promotions rewriting the file.

Synthetic data with known answers:

- `random_walk`: a driftless log-normal walk (a martingale), where no parameter has an edge,
  so every promotion is a false one;
- `planted_rsi`: a market that *obeys* an RSI mean-reversion rule. Its drift is +`drift` per
  bar while the rule rsi_reversion(period, `oversold`, exit_level) holds a position and
  -`down` while it is flat, so the oversold level the market follows is the best one to trade
  by construction: a lower level enters late or never, a higher one buys while prices still
  fall. `sweep` confirms it (see benchmarks/HERMES.md for the measured landscape).

`naive_reoptimise` is the comparison Hermes must beat: every week, grid-search every tunable
jointly on the trailing window and trade the in-sample best for the next week, through the
same engine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import select

from trader.backtest import kernel, sweep
from trader.brokers import PaperBroker
from trader.config import StrategyConfig, load_strategy_config, parse_strategy_config
from trader.engine import Engine, split_symbol
from trader.errors import ConfigError
from trader.feeds import MarketView, ReplayFeed
from trader.goals import Goals
from trader.ledger import open_ledger, sessions
from trader.ledger.models import MAIN_BOOK, Approval, Experiment, StrategyVersion
from trader.timeframes import bars_per_year, timeframe_seconds

from .cycle import CycleInputs, run_cycle
from .observe import equity_series
from .types import ExperimentDecision, Proposal

START = pd.Timestamp("2022-01-03 00:00", tz="UTC")  # a Monday: weeks line up with the calendar


# -- synthetic markets ------------------------------------------------------------------------


def _frame(close: np.ndarray, rng: np.random.Generator, sigma: float, timeframe: str) -> pd.DataFrame:
    """Candles around a close path: open = previous close, wicks beyond both."""
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2, close.size)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2, close.size)))
    index = pd.date_range(START, periods=close.size, freq=pd.Timedelta(seconds=timeframe_seconds(timeframe)),
                          name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": np.ones(close.size)}, index=index)


def random_walk(n: int, seed: int, timeframe: str = "1h", sigma: float = 0.007,
                price: float = 20_000.0) -> pd.DataFrame:
    """A log-normal random walk with E[simple return] = 0 (BTC-like 0.7 % per hourly bar):
    no strategy has an edge on it, so any promotion is a false one."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(-sigma * sigma / 2, sigma, n)  # -σ²/2: a martingale in price, not in log price
    steps[0] = 0.0
    return _frame(price * np.exp(np.cumsum(steps)), rng, sigma, timeframe)


def planted_rsi(n: int, seed: int, *, oversold: float = 20.0, period: int = 14, exit_level: float = 55.0,
                drift: float = 0.002, down: float | None = None, sigma: float = 0.005, timeframe: str = "1h",
                price: float = 20_000.0) -> pd.DataFrame:
    """A market driven by the rule rsi_reversion(period, oversold, exit_level).

    Log return of bar t = +drift while the rule (evaluated on the closes up to t-1, with the
    library's Wilder RSI) is long, -down (default: drift) while it is flat, plus N(0, sigma)
    noise. The rule's own `oversold` is then the best level to trade; the effect's strength is
    drift / sigma per bar."""
    down = drift if down is None else down
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, n)
    close = np.empty(n)
    close[0] = price
    alpha = 1.0 / period
    gain = loss = 0.0
    seen, long = 0, False
    for t in range(1, n):
        mu = 0.0 if seen < period else (drift if long else -down)
        close[t] = close[t - 1] * math.exp(mu + noise[t])
        change = close[t] - close[t - 1]
        up, dn = max(change, 0.0), max(-change, 0.0)
        # the same recursion as strategies.indicators.rsi (ewm, adjust=False, seeded by the first change)
        gain, loss = (up, dn) if seen == 0 else ((1 - alpha) * gain + alpha * up, (1 - alpha) * loss + alpha * dn)
        seen += 1
        if seen >= period:
            rsi = 100.0 - 100.0 / (1.0 + gain / loss) if loss > 0 else (100.0 if gain > 0 else 50.0)
            if rsi > exit_level:  # leaving wins when both hold, as in indicators.latch
                long = False
            elif rsi < oversold:
                long = True
    return _frame(close, rng, sigma, timeframe)


# -- the daemon in fast-forward ---------------------------------------------------------------


@dataclass(frozen=True)
class CycleRecord:
    index: int  # 0: the first, read-only cycle
    time: datetime
    mode: str
    verdict: str
    weakest: str | None
    decision: ExperimentDecision
    proposal: Proposal | None
    version: str  # the strategy version traded after this cycle (a promotion changes it)
    values: dict[str, Any]  # its tunable variables
    settings: dict[str, Any]  # its whole effective config
    equity: float  # the baseline book's equity at `time`


@dataclass
class SimulationResult:
    cycles: list[CycleRecord]
    experiments: list[dict[str, Any]]  # every experiment in the ledger, oldest first
    equity: pd.Series  # the baseline book (Hermes-evolved strategy) per bar
    workdir: Path
    initial: StrategyConfig

    @property
    def promotions(self) -> list[CycleRecord]:
        return [c for c in self.cycles if c.decision.action == "promote" and c.decision.applied]

    @property
    def first_cycle_time(self) -> datetime:
        return self.cycles[0].time

    def trajectory(self, variable: str) -> list[Any]:
        """The variable's value before the first cycle and after each one."""
        return [self.initial.value_of(variable)] + [c.values[variable] for c in self.cycles]


class _Replay:
    """A ledger and a feed walking the frame; `drive` ticks engines over the next bars."""

    def __init__(self, frame: pd.DataFrame, workdir: Path, start: int, lookback: int):
        self.url = f"sqlite:///{workdir / 'ledger.db'}"
        self._engine = open_ledger(self.url)
        self.factory = sessions(self._engine)
        self._views: Iterator[MarketView] = ReplayFeed(frame, lookback).views(start)
        self.position = start  # index of the next bar to tick

    def drive(self, stop: int, books: list[tuple[str, StrategyConfig]]) -> float:
        """Tick bars [position, stop) through one engine per book; the first book's last equity."""
        engines = [Engine(config=config, goals=None, sessions=self.factory, broker=PaperBroker(split_symbol(
            config.symbol)[1]), book=book) for book, config in books]
        equity = math.nan
        try:
            for view in itertools.islice(self._views, stop - self.position):
                for k, engine in enumerate(engines):
                    report = engine.tick(view, now=view.next_time)
                    if k == 0:
                        equity = report.equity
        finally:
            for engine in engines:
                engine.close()
        self.position = stop
        return equity

    def equity(self, book: str = MAIN_BOOK) -> pd.Series:
        with self.factory() as s:
            return equity_series(s, book)

    def dispose(self) -> None:
        self._engine.dispose()


def _schedule(frame: pd.DataFrame, timeframe: str, start: int, weeks_warmup: int, cycles: int) -> list[int]:
    """Bar index ending each reviewed week (exclusive)."""
    per_week = 7 * 86400 // timeframe_seconds(timeframe)
    ends = [start + (weeks_warmup + k) * per_week for k in range(cycles)]
    if weeks_warmup < 1 or cycles < 1 or ends[-1] > len(frame):
        raise ValueError(f"{weeks_warmup} warm-up weeks + {cycles} cycles of {per_week} bars from bar {start} "
                         f"need {ends[-1] if ends else start} bars; the frame has {len(frame)}")
    return ends


def _fresh(workdir: str | Path) -> Path:
    """A work directory without a ledger yet: a replay must start from an empty book."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "ledger.db").exists():
        raise ValueError(f"{workdir} already holds a ledger; give each simulation its own directory")
    return workdir


def _as_config(strategy: str | StrategyConfig | Path) -> tuple[StrategyConfig, str]:
    if isinstance(strategy, StrategyConfig):
        return strategy, yaml.safe_dump(strategy.to_dict(), sort_keys=False)
    if isinstance(strategy, Path):
        strategy = strategy.read_text(encoding="utf-8")
    return parse_strategy_config(yaml.safe_load(strategy), "<simulation>"), strategy


def _running_books(factory) -> list[tuple[str, StrategyConfig]]:
    with factory() as s:
        rows = s.scalars(select(Experiment).where(Experiment.status == "running").order_by(Experiment.id))
        return [(e.book, parse_strategy_config(dict(s.get(StrategyVersion, e.challenger_version).settings),
                                               f"<challenger {e.challenger_version}>")) for e in rows]


def simulate(frame: pd.DataFrame, strategy: str | StrategyConfig | Path, goals: Goals, *, weeks_warmup: int,
             cycles: int, workdir: str | Path, approve_after_first: bool = True, budget: int = 100,
             start: int = 0, lookback: int = 500,
             on_cycle: Callable[[CycleRecord], None] | None = None) -> SimulationResult:
    """Replay `frame` from bar `start` through the daemon and run `cycles` weekly Hermes cycles,
    the first at the end of week `weeks_warmup`. `strategy` is YAML text, a path or a config;
    bars before `start` are history only (indicator warm-up, walk-forward backtests)."""
    workdir = _fresh(workdir)
    initial, text = _as_config(strategy)
    path = workdir / "strategy.yaml"
    path.write_text(text, encoding="utf-8")
    ends = _schedule(frame, initial.timeframe, start, weeks_warmup, cycles)
    replay = _Replay(frame, workdir, start, lookback)
    records: list[CycleRecord] = []
    try:
        for k, end in enumerate(ends):
            config = load_strategy_config(path)
            equity = replay.drive(end, [(MAIN_BOOK, config)] + _running_books(replay.factory))
            now = frame.index[end - 1].to_pydatetime()
            result = run_cycle(replay.factory, CycleInputs(config_path=path, goals=goals, ohlcv=frame.iloc[:end],
                                                           data_dir=workdir, now=now, budget=budget))
            after = load_strategy_config(path)
            record = CycleRecord(index=k, time=now, mode=result.mode, verdict=result.scorecard.verdict,
                                 weakest=result.scorecard.weakest, decision=result.decision,
                                 proposal=result.proposal, version=after.version,
                                 values={name: after.value_of(name) for name in after.tunable},
                                 settings=after.to_dict(), equity=equity)
            records.append(record)
            if on_cycle is not None:
                on_cycle(record)
            if k == 0 and approve_after_first:
                with replay.factory.begin() as s:  # `hermes approve`, after one read-only review
                    s.add(Approval(kind="hermes_apply", detail={"live": False, "by": "simulation"}))
        experiments = _experiments(replay.factory)
        equity = replay.equity()
    finally:
        replay.dispose()
    return SimulationResult(cycles=records, experiments=experiments, equity=equity, workdir=workdir, initial=initial)


def _experiments(factory) -> list[dict[str, Any]]:
    with factory() as s:
        out = []
        for e in s.scalars(select(Experiment).order_by(Experiment.id)):
            out.append(dict(id=e.id, book=e.book, variable=e.variable, value=e.value,
                            baseline_value=e.baseline_value, status=e.status, variants_tried=e.variants_tried,
                            cycles=e.cycles, started_at=e.started_at, decided_at=e.decided_at,
                            evidence=dict(e.evidence or {}),
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


# -- the comparison: re-optimise everything every week ----------------------------------------


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


@dataclass
class NaiveResult:
    equity: pd.Series
    choices: list[dict[str, Any]] = field(default_factory=list)  # per week: time, the values traded next


def naive_reoptimise(frame: pd.DataFrame, config: StrategyConfig, *, weeks_warmup: int, cycles: int,
                     workdir: str | Path, lookback_days: int, start: int = 0, points: int = 5,
                     metric: str = "sharpe", lookback: int = 500) -> NaiveResult:
    """The same replay and weeks as `simulate`, but at each week's end every tunable is
    re-optimised jointly (a `coarse_grid`, best in-sample `metric` on the trailing
    `lookback_days`) and the winner trades the next week. Before the first review the
    original config trades, as in the Hermes run."""
    workdir = _fresh(workdir)
    ends = _schedule(frame, config.timeframe, start, weeks_warmup, cycles)
    grid = coarse_grid(config, points)
    replay = _Replay(frame, workdir, start, lookback)
    current, choices = config, []
    try:
        for end in ends:
            replay.drive(end, [(MAIN_BOOK, current)])
            now = frame.index[end - 1]
            window = frame.iloc[:end]
            window = window[window.index >= now - pd.Timedelta(days=lookback_days)]
            table = sweep(window, config, grid)
            scores = table[metric].astype(float).fillna(-math.inf).to_numpy()
            current = grid[int(np.argmax(scores))]
            choices.append({"time": now, metric: float(scores.max()),
                            **{n: current.value_of(n) for n in config.tunable}})
        if ends[-1] < len(frame):
            replay.drive(len(frame), [(MAIN_BOOK, current)])
        equity = replay.equity()
    finally:
        replay.dispose()
    return NaiveResult(equity=equity, choices=choices)


def replay_fixed(frame: pd.DataFrame, config: StrategyConfig, workdir: str | Path, *, start: int = 0,
                 lookback: int = 500) -> pd.Series:
    """The baseline nobody changes, replayed through the engine; its equity per bar."""
    replay = _Replay(frame, _fresh(workdir), start, lookback)
    try:
        replay.drive(len(frame), [(MAIN_BOOK, config)])
        return replay.equity()
    finally:
        replay.dispose()


def oos_metrics(equity: pd.Series, since: datetime | pd.Timestamp, timeframe: str) -> dict[str, float]:
    """Total return, annualised Sharpe and max drawdown of `equity` from `since` on (the
    backtester's definitions, `kernel.equity_stats`, measured from the equity at `since`)."""
    part = equity[equity.index >= pd.Timestamp(since)]
    values = np.ascontiguousarray(part.to_numpy(dtype=float))
    total, sharpe, _sortino, drawdown = kernel.equity_stats(values, float(values[0]), bars_per_year(timeframe))
    return {"total_return": float(total), "sharpe": float(sharpe), "max_drawdown": float(drawdown),
            "bars": int(values.size)}


# -- ready-made settings for the experiments in tests and benchmarks --------------------------

PLANTED_STRATEGY = """\
name: planted-rsi
exchange: coinbase
symbol: BTC/USD
timeframe: 1h
capital: 10000
strategy: rsi_reversion
params:
  period: 14
  oversold: 30
  exit_level: 55
risk:
  stake_fraction: 0.95
  stop_loss: null
  take_profit: null
  fee: 0.001
  slippage: 0.0005
tunable:
  period:     {min: 5,  max: 30, step: 1}
  oversold:   {min: 10, max: 40, step: 1}
  exit_level: {min: 45, max: 80, step: 1}
"""


def lenient_goals(lookback_days: int, success: dict[str, float] | None = None) -> Goals:
    """Goals whose failure side never trips in a simulation (a drawdown of 95 %, no monthly
    floor): a failing verdict halts the daemon and stops proposals, which would end the
    experiment rather than test learning. Success goals default to the shipped ones."""
    data: dict[str, Any] = {"failure": {"thresholds": {"max_drawdown": 0.95}, "monthly_return_floor": None},
                            "review": {"lookback_days": lookback_days}}
    if success is not None:
        data["success"] = success
    return Goals.model_validate(data)
