"""Live trading through ccxt's own binance client against the local exchange on 127.0.0.1:
the ledger must hold every exchange fill exactly once and never send an order twice, whatever
happens between the intent and the answer."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.brokers import LiveBroker
from trader.config import parse_strategy_config
from trader.daemon import lookback_for
from trader.engine import Engine
from trader.exchange import Credentials, ExchangeAdapter
from trader.feeds import ExchangeFeed
from trader.ledger import open_ledger, sessions, store
from trader.localexchange import LocalExchange
from trader.localexchange import faults
from trader.risk import Limits, RiskEngine


class Crash(BaseException):
    """Stands for the process dying (kill -9) at a chosen point."""


@pytest.fixture
def exchange(btc):
    with LocalExchange(btc.iloc[:1200], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        yield ex


@pytest.fixture
def live_config(config):
    data = config.to_dict()
    # fast averages so that a few hundred bars hold several round trips
    data.update(exchange="binance", symbol="BTC/USDT", capital=10_000.0)
    data["params"].update(fast=5, slow=30)
    return parse_strategy_config(data, "<live>")


class Rig:
    """The daemon's live wiring (as trader.daemon.Service builds it) on a driven clock."""

    def __init__(self, exchange, config, url, broker_wrapper=None):
        self.exchange = exchange
        self.config = config
        self.adapter = ExchangeAdapter("binance", "BTC/USDT", credentials=Credentials("test-key", "test-secret"),
                                       api_url=exchange.base_url)
        rules = self.adapter.market_rules()
        broker = LiveBroker(self.adapter, "BTC", "USDT")
        if broker_wrapper:
            broker = broker_wrapper(broker)
        self.factory = sessions(open_ledger(url))
        self.engine = Engine(config=config, goals=None, sessions=self.factory, broker=broker,
                             risk=RiskEngine(config, None, Limits(rules.amount_step, rules.min_amount, rules.min_notional),
                                             self.adapter.round_amount))
        self.feed = ExchangeFeed(self.adapter, config.timeframe, lookback_for(config))

    def step(self, i):
        """Move the exchange to candle i in progress and run the tick for candle i-1."""
        when = self.exchange.candles.open_time(i)
        self.exchange.clock.set(when)
        now = pd.Timestamp(when, unit="ms", tz="UTC").to_pydatetime()
        return self.engine.tick(self.feed.view(now=now), now=now)


def ledger_matches_exchange(rig):
    with rig.factory() as s:
        fills = store.fills_of(s, "main")
        position = s.get(store.Position, "main")
        orders = list(s.query(store.Order))
    trades = rig.exchange.trades
    assert sorted(f.trade_id for f in fills) == sorted(str(t["trade_id"]) for t in trades)
    ids = [o["client_order_id"] for o in rig.exchange.orders]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    assert position.qty == pytest.approx(rig.exchange.balances()["BTC"]["total"], abs=1e-9)
    return fills, orders


def run(rig, start, stop):
    for i in range(start, stop):
        rig.step(i)


def test_live_trading_books_every_fill_once(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'l.db'}")
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    assert len(orders) >= 6 and all(o.status == "filled" for o in orders)
    # amounts were rounded to the market's step before they were sent
    assert all(round(o.amount / 0.00001) * 0.00001 == pytest.approx(o.amount, abs=1e-12) for o in orders)


def test_partial_fills_are_all_booked(btc, live_config, tmp_path):
    with LocalExchange(btc.iloc[:600], symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=3) as ex:
        rig = Rig(ex, live_config, f"sqlite:///{tmp_path / 'p.db'}")
        run(rig, 40, 300)
        fills, orders = ledger_matches_exchange(rig)
    assert len(fills) == 3 * len(orders)


def test_connection_dropped_after_the_order_was_accepted(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'd.db'}")
    exchange.inject("POST /api/v3/order", faults.drop_after_accept(), times=1)
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    assert not [o for o in orders if o.status != "filled"]


def test_server_error_on_create_order_is_reconciled(exchange, live_config, tmp_path):
    rig = Rig(exchange, live_config, f"sqlite:///{tmp_path / 'e.db'}")
    exchange.inject("POST /api/v3/order", faults.server_error(503), times=2)
    run(rig, 40, 400)
    fills, orders = ledger_matches_exchange(rig)
    assert {o.status for o in orders} <= {"filled", "not_sent"}
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
    restarted.engine.resolve_pending()
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
