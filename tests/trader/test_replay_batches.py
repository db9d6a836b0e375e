"""A fast replay commits its ledger in batches of ticks; the ledger must end exactly as with
a commit per tick (a paced replay), also when a tick fails in the middle of a batch."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from trader import daemon
from trader.daemon import RunOptions, run_replay
from trader.errors import StrategyError
from strategies.base import Strategy

from ..conftest import BTC_1H, STRATEGY_YAML

TABLES = {
    "equity_points": "book, time, equity, cash, position_qty, price, target, strategy_version",
    "orders": "client_order_id, book, mode, side, amount, price, reason, status, filled, bar_time",
    "fills": "client_order_id, trade_id, side, amount, price, fee, reason, time",
    "positions": "book, qty, entry_price, acted_target, trade_cash",
    "balances": "book, currency, free, used, total",
    "daemon_state": "book, state, reason, strategy_version, peak_equity, last_bar_time, last_tick_at",
    "events": "kind, message, book",
}


def ledger_rows(url):
    engine = create_engine(url)
    with engine.connect() as c:
        rows = {t: c.execute(text(f"SELECT {cols} FROM {t} ORDER BY 1, 2")).all() for t, cols in TABLES.items()}
    engine.dispose()
    return rows


def replay(url, monkeypatch, speed=None, fail_at=None):
    """Replay the 3,000 hourly candles into `url`; the strategy raises on tick `fail_at`."""
    if fail_at is not None:
        real, calls = Strategy._signal, {"n": 0}  # under both exposure() and the tick's latest()

        def signal(self, ohlcv, params):
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise RuntimeError("the strategy fails")
            return real(self, ohlcv, params)

        monkeypatch.setattr(Strategy, "_signal", signal)
    monkeypatch.setattr(daemon.time, "sleep", lambda _s: None)  # paced, without the waiting
    options = RunOptions(config_path=STRATEGY_YAML, replay=BTC_1H, speed=speed, database_url=url)
    try:
        run_replay(options)
    finally:
        monkeypatch.undo()
    return ledger_rows(url)


def second_url(url):
    if url.startswith("sqlite"):
        return url.replace("ledger.db", "per-tick.db")
    pytest.skip("one PostgreSQL database per test: the failing-tick variant covers it")


def test_batched_commits_leave_the_ledger_of_a_commit_per_tick(database_url, monkeypatch):
    batched = replay(database_url, monkeypatch)
    per_tick = replay(second_url(database_url), monkeypatch, speed=1e9)
    assert len(batched["equity_points"]) == 3000 and len(batched["fills"]) > 40
    assert batched == per_tick


@pytest.mark.parametrize("fail_at", [1, 1500, 2999])
def test_a_failing_tick_keeps_the_ticks_before_it(database_url, monkeypatch, fail_at):
    # the failing tick's rollback takes its batch with it; the replay redoes the batch
    with pytest.raises(StrategyError, match="the strategy fails"):
        replay(database_url, monkeypatch, fail_at=fail_at)
    batched = ledger_rows(database_url)
    assert len(batched["equity_points"]) == fail_at - 1
    if database_url.startswith("sqlite"):
        with pytest.raises(StrategyError):
            replay(second_url(database_url), monkeypatch, speed=1e9, fail_at=fail_at)
        assert batched == ledger_rows(second_url(database_url))
