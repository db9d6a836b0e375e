"""A tick's transaction in a replay's batch: statements on the batch's connection and the
ORM's changes commit and roll back together, as through the session."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from trader.ledger import hot, open_ledger, sessions, store
from trader.ledger.models import DaemonState, EquityPoint, StrategyVersion
from trader.ledger.replay import GroupCommit

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


def setup(url):
    ledger = open_ledger(url)
    with sessions(ledger).begin() as s:
        s.add(StrategyVersion(version="v", name="n", strategy="x", settings={}))
        s.add(DaemonState(book="main", state="running", mode="paper", peak_equity=0.0))
    group = GroupCommit(ledger)
    s = group.sessions()
    state = s.get(DaemonState, "main")
    hot.end_tick(s)
    return ledger, group, s, state


def stored(ledger):
    with sessions(ledger)() as s:
        return s.get(DaemonState, "main").reason, s.scalar(select(func.count()).select_from(EquityPoint))


def test_a_change_to_a_held_row_commits_with_the_batch(database_url):
    ledger, group, s, state = setup(database_url)
    store.record_equity(s, book="main", time=T, equity=1.0, cash=1.0, qty=0.0, price=1.0, target=0.0,
                        strategy_version="v")
    assert not s.in_transaction()  # the statement ran on the batch's connection
    state.reason = "set on the held row"
    hot.end_tick(s)
    group.close()
    assert stored(ledger) == ("set on the held row", 1)
    ledger.dispose()


def test_a_failed_tick_rolls_the_batch_back_also_without_a_session_transaction(database_url):
    ledger, group, s, state = setup(database_url)
    store.record_equity(s, book="main", time=T, equity=1.0, cash=1.0, qty=0.0, price=1.0, target=0.0,
                        strategy_version="v")
    assert not s.in_transaction()
    hot.abort_tick(s)
    group.close()
    assert stored(ledger) == (None, 0)
    ledger.dispose()
