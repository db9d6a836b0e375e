"""Live trading through ccxt's own binance client against the local exchange on 127.0.0.1:
the ledger must hold every exchange fill exactly once and never send an order twice, whatever
happens between the intent and the answer."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.brokers import LiveBroker
from trader.config import parse_strategy_config
from trader.exchange import Credentials, ExchangeAdapter
from trader.ledger import store
from trader.localexchange import LocalExchange
from trader.localexchange import faults
from trader.risk import RiskEngine

from .liverig import Crash, Rig, exchange, ledger_matches_exchange, live_config, run  # noqa: F401 (fixtures)


def test_live_trading_books_every_fill_once(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'l.db'}")
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    market = [o for o in orders if o.type == "market"]  # the others: the stop resting on the exchange
    assert len(market) >= 6 and all(o.status == "filled" for o in market)
    # amounts were rounded to the market's step before they were sent
    assert all(round(o.amount / 0.00001) * 0.00001 == pytest.approx(o.amount, abs=1e-12) for o in orders)


def test_partial_fills_are_all_booked(btc, live_config, tmp_path):
    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=3) as ex:
        rig = Rig(ex, live_config, f"sqlite:///{tmp_path / 'p.db'}")
        run(rig, 40, 300)
        fills, orders = ledger_matches_exchange(rig)
    assert len(fills) == 3 * len([o for o in orders if o.filled])


def test_connection_dropped_after_the_order_was_accepted(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'd.db'}")
    exchange.inject("POST /api/v3/order", faults.drop_after_accept(), times=1)
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    assert not [o for o in orders if o.status != "filled" and o.type == "market"]


def test_server_error_on_create_order_is_reconciled(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'e.db'}")
    exchange.inject("POST /api/v3/order", faults.server_error(503), times=2)
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    assert {o.status for o in orders if o.type == "market"} <= {"filled", "not_sent"}
    with rig.factory() as s:
        assert s.query(store.Event).filter_by(kind="order_not_sent").count() >= 1


@pytest.mark.parametrize("when", ["before_send", "after_send"])
def test_a_crash_between_intent_and_answer_duplicates_nothing(exchange, live_config, tmp_path, when):
    url = f"sqlite:///{tmp_path / 'c.db'}"

    class CrashingBroker:
        def __init__(self, inner):
            self.inner, self.mode, self.armed = inner, inner.mode, True

        def execute(self, cid, plan, fill_time):
            if self.armed:
                self.armed = False
                if when == "after_send":
                    self.inner.execute(cid, plan, fill_time)  # the exchange has it; we never hear back
                raise Crash()
            return self.inner.execute(cid, plan, fill_time)

        def resolve(self, order, fee_rate):
            return self.inner.resolve(order, fee_rate)

        def available_cash(self):
            return self.inner.available_cash()

    rig = Rig(exchange, live_config, url, broker_wrapper=CrashingBroker)
    crashed_at = None
    for i in range(40, 400):
        try:
            rig.step(i)
        except Crash:
            crashed_at = i
            break
    assert crashed_at is not None
    with rig.factory() as s:
        (pending,) = store.unresolved_orders(s, "main")
        assert pending.status == "intent"
    # restart: a new process on the same ledger reconciles before it decides anything
    restarted = Rig(exchange, live_config, url)
    wait = restarted.engine.resolve_pending()
    if when == "before_send":
        # not at the exchange: the crashed process may have sent it just before it died, so
        # the restart waits until such a request could no longer be accepted
        assert wait == pytest.approx(restarted.adapter.order_expiry_seconds())
        exchange.clock.advance(int(wait * 1000) + 1)
        assert restarted.engine.resolve_pending() is None
    else:
        assert wait is None
    with restarted.factory() as s:
        settled = store.order_by_client_id(s, pending.client_order_id)
        assert settled.status == ("not_sent" if when == "before_send" else "filled")
    run(restarted, crashed_at, 400)
    fills, orders = ledger_matches_exchange(restarted)
    assert sum(o["client_order_id"] == pending.client_order_id for o in exchange.orders) == (when == "after_send")


def test_insufficient_funds_is_recorded_and_trading_goes_on(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'f.db'}")
    exchange.inject("POST /api/v3/order", faults.http_error(400, -2010, "Account has insufficient balance for requested action."), times=1)
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    rejected = [o for o in orders if o.status == "rejected"]
    assert len(rejected) == 1 and "insufficient" in rejected[0].error.lower()
    assert len([o for o in orders if o.status == "filled"]) >= 4


def test_an_order_below_the_minimum_notional_is_denied_not_sent(btc, live_config, tmp_path):
    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 8.0}) as ex:
        rig = Rig(ex, live_config, f"sqlite:///{tmp_path / 'n.db'}")
        run(rig, 40, 200)
        assert ex.orders == []
        with rig.factory() as s:
            denied = s.query(store.Event).filter_by(kind="order_denied").all()
    assert denied and "below the market's minimum notional 10" in denied[0].message


def test_the_exchange_balance_caps_what_is_spent(btc, live_config, tmp_path):
    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 500.0}) as ex:
        rig = Rig(ex, live_config, f"sqlite:///{tmp_path / 'b.db'}")
        run(rig, 40, 300)
        fills, orders = ledger_matches_exchange(rig)
        buys = [o for o in orders if o.side == "buy"]
        assert buys and all(o.amount * o.price <= 500.0 for o in buys)


class ManualClock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_order_the_exchange_does_not_know_is_given_up_only_when_its_request_has_expired(exchange, live_config, tmp_path):
    """A request that timed out on our side may still reach the exchange: until it is older
    than the exchange accepts, 'not found' proves nothing."""
    import time

    adapter = ExchangeAdapter("binance", "BTC/USDT", credentials=Credentials("test-key", "test-secret"),
                              api_url=exchange.base_url, timeout_ms=300)
    adapter.market_rules()
    clock = ManualClock()
    broker = LiveBroker(adapter, "BTC", "USDT", clock=clock)
    exchange.clock.set(exchange.candles.open_time(100))
    plan = RiskEngine(live_config, None).plan_for_target(0.5, 0.0, 10_000.0, 2500.0, "signal")
    # the exchange takes 1 s to receive the order; the client gives up after 0.3 s
    exchange.inject("POST /api/v3/order", faults.latency(1.0))
    assert broker.execute("ht-slow", plan, None).status == "unknown"

    class Pending:
        client_order_id, status = "ht-slow", "unknown"

    clock.now += 2.0
    early = broker.resolve(Pending, 0.001)
    assert early.status == "unknown" and early.in_flight_for == pytest.approx(4.0)  # 5 s window + 1 s - 2 s
    time.sleep(1.2)  # the slow request arrives
    found = broker.resolve(Pending, 0.001)
    assert found.status == "filled" and len(found.fills) == 1

    # an order that never left: 'not found' becomes final once its window has passed
    class Never:
        client_order_id, status = "ht-never", "intent"  # a crash before the send, in an earlier process

    assert broker.resolve(Never, 0.001).in_flight_for == pytest.approx(4.0)  # counted from the broker's start
    clock.now += 4.0
    assert broker.resolve(Never, 0.001).status == "not_sent"


def test_a_refused_stop_loss_is_sent_again_under_its_own_id(btc, live_config, tmp_path):
    """429 on a stop-loss checked at the candle close (an exchange without stop orders):
    nothing was placed; the daemon waits Retry-After and retries the tick, which sends the same
    decision under the same client order id, once."""
    from trader.errors import OrderRefused

    data = live_config.to_dict()
    data["risk"]["stop_loss"] = 0.02
    data["params"].update(fast=20, slow=100)  # slow enough for stops to fire before the signal turns
    config = parse_strategy_config(data, "<live stop>")

    def stops(rig):
        with rig.factory() as s:
            return [o for o in s.query(store.Order) if o.reason == "stop_loss" and o.bar_time >= since]

    # the run without a refusal (the twin the refused run must end up equal to)
    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 10_000.0}, stop_orders=False) as clean:
        twin = Rig(clean, config, f"sqlite:///{tmp_path / 'clean.db'}")
        # a stop while the strategy still wants the position: a retried exit must not re-enter
        first = next(i for i in range(40, 600)
                     if (r := twin.step(i)).target == 1.0 and any(cid.endswith("-s") for cid in r.orders))
        since = pd.Timestamp(clean.candles.open_time(first - 1), unit="ms", tz="UTC").to_pydatetime()
        (expected,) = stops(twin)
        run(twin, first + 1, first + 60)
        _, twin_orders = ledger_matches_exchange(twin)

    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 10_000.0}, stop_orders=False) as ex:
        rig = Rig(ex, config, f"sqlite:///{tmp_path / 'refused.db'}")
        run(rig, 40, first)
        ex.inject("POST /api/v3/order", faults.rate_limited(retry_after=3))
        with pytest.raises(OrderRefused) as refused:
            rig.step(first)
        assert refused.value.retry_after == 3.0
        (stop,) = stops(rig)
        assert stop.client_order_id == expected.client_order_id and stop.status == "not_sent"
        assert not [o for o in ex.orders if o["client_order_id"] == stop.client_order_id]
        rig.step(first)  # the daemon's retry of the same tick
        (stop,) = stops(rig)
        assert stop.status == "filled" and stop.error is None
        assert sum(o["client_order_id"] == stop.client_order_id for o in ex.orders) == 1
        run(rig, first + 1, first + 60)
        fills, orders = ledger_matches_exchange(rig)
        # and trading goes on as it did without the refusal
        assert [(o.client_order_id, o.status) for o in orders] == [(o.client_order_id, o.status) for o in twin_orders]
