"""The engine driven through history on a simulated clock: it must make exactly the trades
the backtester makes, and its ledger must be complete and idempotent."""

from __future__ import annotations

import numpy as np
import pytest

from trader.backtest import run_backtest
from trader.brokers import PaperBroker
from trader.daemon import lookback_for
from trader.engine import Engine
from trader.feeds import ReplayFeed
from trader.goals import Goals
from trader.ledger import open_ledger, sessions, store


@pytest.fixture
def ledger(database_url):
    engine = open_ledger(database_url)
    yield sessions(engine)
    engine.dispose()


def replay(config, frame, factory, goals=None, start=0, stop=None):
    engine = Engine(config=config, goals=goals, sessions=factory, broker=PaperBroker("USD"))
    for i, view in enumerate(ReplayFeed(frame, lookback_for(config)).views(start)):
        if stop is not None and i + start >= stop:
            break
        engine.tick(view, now=view.next_time)
    return engine


VARIANTS = [
    ("ma_cross", {}),  # the shipped file: SMA 20/50, 5% stop
    ("ma_cross", {"stop_loss": None, "take_profit": 0.04}),
    ("rsi_reversion", {"stop_loss": 0.03, "take_profit": 0.05, "stake_fraction": 0.5}),
    ("donchian", {"stop_loss": 0.02, "slippage": 0.001}),
]


def make_config(config, strategy, risk_changes):
    data = config.to_dict()
    data["strategy"] = strategy
    if strategy != config.strategy:
        data["params"], data["tunable"] = {}, {}
    data["risk"].update(risk_changes)
    from trader.config import parse_strategy_config

    return parse_strategy_config(data, "<test>")


@pytest.mark.parametrize("strategy, risk", VARIANTS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(VARIANTS)])
def test_replay_gives_exactly_the_backtest_trades(config, btc, ledger, strategy, risk):
    config = make_config(config, strategy, risk)
    frame = btc.iloc[:1500]
    expected = run_backtest(frame, config)
    replay(config, frame, ledger)
    with ledger() as s:
        fills = store.fills_of(s, "main")
        equity = store.equity_of(s, "main")
    assert len(expected.fills) > 6, "too few trades for the comparison to mean anything"
    got = [(f.time, f.side, f.amount, f.price, f.fee, f.reason) for f in fills]
    want = [(f.time.to_pydatetime(), f.side, f.qty, f.price, f.fee, f.reason) for f in expected.fills]
    assert got == want  # bit for bit: same rules, same order of operations
    np.testing.assert_array_equal([p.equity for p in equity], expected.equity.to_numpy())
    assert all(f.strategy_version == config.version for f in fills)
    assert all(p.strategy_version == config.version for p in equity)


def test_ticks_are_idempotent(config, btc, ledger):
    frame = btc.iloc[:400]
    engine = replay(config, frame, ledger)
    with ledger() as s:
        before = len(store.fills_of(s, "main")), len(store.equity_of(s, "main"))
    # the same bars again (a restarted daemon, a coalesced job): nothing is added
    for view in ReplayFeed(frame, lookback_for(config)).views(300):
        assert engine.tick(view).skipped
    with ledger() as s:
        assert (len(store.fills_of(s, "main")), len(store.equity_of(s, "main"))) == before


def test_a_restart_continues_where_it_stopped(config, btc, ledger):
    frame = btc.iloc[:1200]
    replay(config, frame, ledger, stop=700)
    replay(config, frame, ledger, start=700)  # a new engine on the same ledger
    expected = run_backtest(frame, config)
    with ledger() as s:
        fills = store.fills_of(s, "main")
    assert [(f.time, f.amount, f.price) for f in fills] == [
        (f.time.to_pydatetime(), f.qty, f.price) for f in expected.fills]


def test_the_drawdown_kill_switch_halts_and_closes(config, btc, ledger):
    goals = Goals.model_validate({"failure": {"thresholds": {"max_drawdown": 0.05}}, "on_halt": "close"})
    replay(config, btc.iloc[:1500], ledger, goals=goals)
    with ledger() as s:
        state = s.get(store.DaemonState, "main")
        events = [e for e in s.query(store.Event).filter_by(kind="halted")]
        fills = store.fills_of(s, "main")
        position = s.get(store.Position, "main")
    assert state.state == "halted" and "exceeds the failure threshold 5.00%" in state.reason
    assert len(events) == 1
    halted_at = events[0].time
    assert position.qty == 0.0
    # after the halt nothing is bought again
    last_buy = max(f.time for f in fills if f.side == "buy")
    first_halt_bar = min(p.time for p in _equity_after_halt(ledger))
    assert last_buy <= first_halt_bar
    assert halted_at is not None


def _equity_after_halt(ledger):
    with ledger() as s:
        points = store.equity_of(s, "main")
    peak, out = 0.0, []
    for p in points:
        peak = max(peak, p.equity)
        if 1 - p.equity / peak > 0.05:
            out.append(p)
    return out


def test_keep_on_halt_keeps_the_position_but_enters_nothing(config, btc, ledger):
    goals = Goals.model_validate({"failure": {"thresholds": {"max_drawdown": 0.05}}, "on_halt": "keep"})
    replay(config, btc.iloc[:1500], ledger, goals=goals)
    with ledger() as s:
        halt = s.query(store.Event).filter_by(kind="halted").one()
        fills = store.fills_of(s, "main")
        points = store.equity_of(s, "main")
    halt_bar = next(p.time for p in points if p.time >= _first_breach(points, 0.05))
    assert not [f for f in fills if f.side == "buy" and f.time > halt_bar]
    assert halt.kind == "halted"


def _first_breach(points, limit):
    peak = 10_000.0
    for p in points:
        peak = max(peak, p.equity)
        if 1 - p.equity / peak > limit:
            return p.time
    raise AssertionError("no breach in the data")
