"""The daemon's live wiring on a driven clock, against the local exchange, and the check every
live test ends with: the ledger against the exchange's own record."""

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
        # the daemon's clock is the market's here: an hour passes between two candles, so an
        # order the exchange never saw is settled by the next one
        broker = LiveBroker(self.adapter, "BTC", "USDT", clock=lambda: exchange.clock.now_ms() / 1000)
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
        third = {b.currency: b.total for b in s.query(store.Balance).filter_by(book="main")
                 if b.currency not in ("BTC", "USDT")}
    trades = rig.exchange.trades
    assert sorted(f.trade_id for f in fills) == sorted(str(t["trade_id"]) for t in trades)
    ids = [o["client_order_id"] for o in rig.exchange.orders]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    balances = rig.exchange.balances()
    assert position.qty == pytest.approx(balances["BTC"]["total"], abs=1e-9)
    # a currency the fees were paid in (BNB): the ledger's balance of it is the exchange's, to
    # the exchange's 8 decimals, and one is kept whenever a fill paid in it
    assert {f.fee_currency for f in fills} - {"BTC", "USDT"} <= set(third)
    for currency, total in third.items():
        assert total == pytest.approx(balances[currency]["total"], abs=1e-9), currency
    return fills, orders


def run(rig, start, stop):
    for i in range(start, stop):
        rig.step(i)
