"""kill -9 of the real daemon (`trader run --live`, 1-second candles, against the local
exchange following the wall clock) at chosen points of its ticks, restarts, and the ledger
checked against the exchange's own record after every death and at the end.

benchmarks/chaos.py runs the same with 50+ kills at random points."""

from __future__ import annotations

import numpy as np

from . import harness as H

# (mode, delay): the order path three ways (at once after the intent is logged, a few ms
# later, and mid-tick), a random instant, and a death during start-up's reconciliation
KILLS = [("order", 0.0), ("order", 0.004), ("tick", None), ("order", 0.008), ("startup", 1.4)]


def test_kill_9_at_random_points_duplicates_and_loses_nothing(tmp_path):
    world = H.LiveWorld(tmp_path, seed=11)
    rng = np.random.default_rng(11)
    try:
        records = [H.kill_once(world, k, mode, rng, delay) for k, (mode, delay) in enumerate(KILLS)]
        code, problems = H.settle(world)
        final = world.check()
        rate = H.max_weight_per_minute(world.exchange)
    finally:
        world.close()
    assert [p for r in records for p in r.problems] == []
    assert problems == [] and code == 0
    assert final.ok, final.problems
    # every order the exchange has is filled in the ledger with both its partial fills; an intent
    # killed before it was sent is 'not_sent' (and was decided again)
    assert final.trades == final.fills == 2 * final.orders
    assert final.ledger_orders["filled"] == final.orders >= 1
    assert set(final.ledger_orders) <= {"filled", "not_sent"} and sum(final.ledger_orders.values()) >= 3
    # an order was in flight at some death (the kill hit the order path), and it was settled
    assert any(r.unresolved for r in records)
    assert rate < 6000  # Binance's request weight per minute
