"""kill -9 of the real daemon (`trader run --live`, 1-second candles, against the local
exchange following the wall clock) at chosen points of its ticks, restarts, and the ledger
checked against the exchange's own record after every death and at the end.

benchmarks/chaos.py runs the same with 50+ kills at random points."""

from __future__ import annotations

import numpy as np
import pytest

from trader.localexchange import faults

from . import harness as H

pytestmark = pytest.mark.long  # the real daemon killed and restarted, about 30 s

# (mode, delay): the order path three ways (at once after the intent is logged, a few ms
# later, and mid-tick), a random instant, and a death during start-up's reconciliation
KILLS = [("order", 0.0), ("order", 0.004), ("tick", None), ("order", 0.008), ("startup", 1.4)]


@pytest.mark.parametrize("fee_mode", ["quote", "base", "third"])
def test_kill_9_at_random_points_duplicates_and_loses_nothing(tmp_path, fee_mode):
    """Under each fee mode: in the quote currency, from the base a buy receives (the position
    net of it), in BNB."""
    world = H.LiveWorld(tmp_path, seed=11, fee_mode=fee_mode)
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


def test_a_clean_stop_settles_an_order_left_in_doubt(tmp_path):
    """A 500 on the order request: the daemon cannot know yet whether the order exists.
    SIGTERM at once: the stop waits until the request could no longer be accepted, books
    the order `not_sent`, and exits 0 with the ledger equal to the exchange."""
    world = H.LiveWorld(tmp_path, seed=12)
    try:
        d = world.daemon()
        assert d.wait_event("started", timeout=90) is not None
        assert d.wait_event("tick", timeout=60) is not None
        world.exchange.inject("POST /api/v3/order", faults.server_error(500))
        unknown = d.wait_event("order_unknown", timeout=60)
        assert unknown is not None, d.stderr()[-800:]
        code = d.stop()
        final = world.check()
        with_doubt = [r for r in d.records if r.get("event") == "reconcile_wait"]
    finally:
        world.close()
    assert code == 0
    assert final.ok, final.problems  # nothing left intent, unknown or open
    assert with_doubt  # it did wait for the request to expire rather than guess
    assert final.ledger_orders["not_sent"] >= 1


@pytest.mark.parametrize("fee_mode", ["quote", "base", "third"])  # third: the BNB balance too
def test_kill_9_with_stops_resting_on_the_exchange(tmp_path, fee_mode):
    """A stop rests on the exchange while a position is open: kills right after one is placed
    or cancelled, on the order path and at start-up, each followed by 3 s of downtime in which
    a stop may fire. Nothing duplicated or lost; every stop that fired, also while the daemon
    was down, is booked once at the exchange's price; the ledger equals the exchange."""
    import time

    world = H.LiveWorld(tmp_path, seed=13, fee_mode=fee_mode, strategy=H.strategy_yaml(stop_loss=0.002))
    rng = np.random.default_rng(13)
    kills = [("protect", 0.0), ("protect", 0.005), ("order", 0.004), ("protect", 0.002), ("startup", 1.4)]
    try:
        records = []
        for k, (mode, delay) in enumerate(kills):
            records.append(H.kill_once(world, k, mode, rng, delay))
            time.sleep(3.0)  # down: the market moves on, a stop may fire
        for k in range(len(kills), len(kills) + 6):  # until a stop has fired (when depends on the machine's pace)
            if any(o["type"] == "STOP_LOSS" and o["status"] == "FILLED" for o in world.exchange.orders):
                break
            records.append(H.kill_once(world, k, "protect", rng, 0.0))
            time.sleep(3.0)
        code, problems = H.settle(world)
        final = world.check()
        stops = [o for o in world.exchange.orders if o["type"] == "STOP_LOSS"]
    finally:
        world.close()
    assert [p for r in records for p in r.problems] == []
    assert problems == [] and code == 0
    assert final.ok, final.problems
    assert stops  # stops were placed, and the kills hit them
    assert sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in stops) <= 1
    if not any(o["status"] == "FILLED" for o in stops):
        # every safety check above held, but no stop fired, so "a fired stop is booked once" went
        # unexercised in this run: said, not passed (seen in CI's sequential slow run, quote mode)
        pytest.skip("no stop fired during this run's downtimes: the fired-stop path was not exercised")


def test_kill_9_with_oco_lists_resting_on_the_exchange(tmp_path):
    """The stop and the take-profit rest as one OCO list: kills right after a list is placed or
    cancelled, right after a leg's fill is booked, on the order path and at start-up, each
    followed by 3 s of downtime in which a leg may fill. Nothing duplicated or lost; a leg that
    filled is booked once and its sibling is gone; the ledger equals the exchange."""
    import time

    world = H.LiveWorld(tmp_path, seed=17, strategy=H.strategy_yaml(stop_loss=0.002, take_profit=0.002))
    rng = np.random.default_rng(17)
    kills = [("protect", 0.0), ("protect_fill", 0.0), ("protect", 0.005), ("order", 0.004), ("startup", 1.4)]
    try:
        records = []
        for k, (mode, delay) in enumerate(kills):
            records.append(H.kill_once(world, k, mode, rng, delay))
            time.sleep(3.0)  # down: the market moves on, a leg may fill
        code, problems = H.settle(world)
        final = world.check()
        legs = [o for o in world.exchange.orders if o["type"] in ("STOP_LOSS", "LIMIT_MAKER")]
    finally:
        world.close()
    assert [p for r in records for p in r.problems] == []
    assert problems == [] and code == 0
    assert final.ok, final.problems
    assert {o["type"] for o in legs} == {"STOP_LOSS", "LIMIT_MAKER"}  # lists were placed
    assert sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in legs) <= 2  # one list at most
    assert any(o["status"] == "FILLED" for o in legs)  # and legs filled, the other leg expiring
    assert all(o["status"] != "FILLED" or any(p["status"] == "EXPIRED" for p in legs) for o in legs)
