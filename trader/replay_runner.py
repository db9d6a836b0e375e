"""A replay: the engine driven through a candle file on a simulated clock, with the paper
broker, as fast as possible (or paced), into a fresh ledger; returns the run's summary."""

from __future__ import annotations

import fcntl
import itertools
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from .brokers import PaperBroker
from .config import StrategyConfig, load_strategy_config
from .domain import split_symbol
from .engine import Engine
from .errors import InputError
from .feeds import ReplayFeed
from .ledger import data_dir, open_ledger, sessions, store
from .ledger.replay import GroupCommit
from .ohlcv import load_ohlcv, require_history
from .runoptions import RunOptions, load_goals_if_any, lookback_for
from .timeframes import timeframe_seconds
from .trades import closed_trades


def run_replay(options: RunOptions, stop: threading.Event | None = None,
               loaded: Callable[[], None] | None = None) -> dict:
    """Drive the engine through a file with the paper broker; returns the summary. `loaded`
    is called once the files are read, before the first tick (the CLI installs its signal
    handlers there, so a SIGTERM during a long load ends the process at once)."""
    config = load_strategy_config(options.config_path)
    goals = load_goals_if_any(options.goals_path)
    frame = load_ohlcv(options.replay, timeframe=config.timeframe)
    require_history(frame, config, str(options.replay))
    if loaded is not None:
        loaded()
    lock = None if options.database_url else _ReplayLock(data_dir())  # held until this replay ends
    url = options.database_url or _fresh_replay_db()
    ledger = open_ledger(url)
    _, quote = split_symbol(config.symbol)
    yaml_text = Path(options.config_path).read_text(encoding="utf-8")

    def engine_on(factory) -> Engine:
        return Engine(config=config, goals=goals, sessions=factory, broker=PaperBroker(quote),
                      book=options.book, yaml_text=yaml_text)

    feed = ReplayFeed(frame, lookback_for(config))
    step = timedelta(seconds=timeframe_seconds(config.timeframe))
    # as fast as possible: a commit per 1,000 ticks; paced (someone may be watching): per tick
    group = GroupCommit(ledger, every=1000 if not options.speed else 1)
    engine = engine_on(group.sessions)
    ticks = 0
    started = time.perf_counter()
    try:
        for view in feed.views():
            if stop is not None and stop.is_set():
                break
            try:
                engine.tick(view, now=view.next_time or (view.bar_time + step).to_pydatetime())
            except BaseException:
                # the failed tick's rollback undid its whole batch: redo the batch's ticks
                # before it, so the ledger ends as it would with a commit per tick
                group.close()
                redo = engine_on(sessions(ledger))
                for again in itertools.islice(feed.views(group.committed), ticks - group.committed):
                    redo.tick(again, now=again.next_time or (again.bar_time + step).to_pydatetime())
                redo.close()
                raise
            ticks += 1
            group.tick_done()
            if options.speed:
                time.sleep(1.0 / options.speed)
    finally:
        engine.close()
        group.close()
    elapsed = time.perf_counter() - started
    with sessions(ledger)() as s:
        summary = _summary(s, options.book, config, ticks, elapsed)
    summary["database"] = url
    if lock is not None:
        lock.release()
    return summary


class _ReplayLock:
    """One replay at a time per data directory: a second one would delete the first's ledger
    under it. An flock, so a killed replay never leaves it behind."""

    def __init__(self, folder: Path) -> None:
        path = Path(folder) / "replay.lock"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "a+")
        except OSError as exc:
            raise InputError(f"{path}: cannot be created ({exc.strerror}); expected a writable data directory "
                             "(set TRADER_DATA_DIR)") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise InputError(f"{folder}: another replay is running in this data directory; wait for it, or "
                             "set TRADER_DATA_DIR to another folder") from None

    def release(self) -> None:
        self.handle.close()


def _fresh_replay_db() -> str:
    path = data_dir() / "replay.db"
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot replace the last replay's ledger ({exc.strerror}); expected a "
                         "writable data directory (set TRADER_DATA_DIR)") from None
    return f"sqlite:///{path}"


def _summary(session, book: str, config: StrategyConfig, ticks: int, elapsed: float) -> dict:
    fills = store.fills_of(session, book)
    equity = store.equity_of(session, book)
    position = session.get(store.Position, book)
    final = equity[-1].equity if equity else config.capital
    closed = len(closed_trades(fills, split_symbol(config.symbol)[0]))
    return {
        "ticks": ticks,
        "seconds": round(elapsed, 3),
        "ticks_per_second": round(ticks / elapsed, 1) if elapsed > 0 else None,
        "fills": len(fills),
        "trades": closed,
        "final_equity": final,
        "total_return": final / config.capital - 1.0,
        "open_position": position.qty if position else 0.0,
        "strategy_version": config.version,
        "halted": _kill_switch(session, book),
    }


def _kill_switch(session, book: str) -> dict | None:
    """When and why the drawdown kill switch stopped the replay (why it differs from a
    backtest, which has none); None when it never did."""
    event = session.scalars(select(store.Event).where(store.Event.book == book, store.Event.kind == "halted")
                            .order_by(store.Event.id)).first()
    if event is None:
        return None
    data = event.data or {}
    return {"bar_time": data.get("bar_time"), "reason": event.message, "equity": data.get("equity"),
            "peak_equity": data.get("peak")}
