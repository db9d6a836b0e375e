"""The stop-loss rests on the exchange while a live position is open: placed after the entry
fills (intent first, deterministic id), cancelled before the daemon's own sale, booked once
when it fires (also while the daemon is down), placed again when the exchange refused it, and
replaced by the candle-close check on an exchange without stop orders. A candle that gaps
through the stop exits at the gap in the backtest, on paper and live."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.backtest import run_backtest
from trader.brokers import PaperBroker
from trader.config import parse_strategy_config
from trader.domain import MarketView, OrderStatus, OrderType
from trader.engine import Engine
from trader.ledger import open_ledger, sessions, store
from trader.localexchange import LocalExchange, faults
from trader.protection import InForce, in_force

from .liverig import Rig, ledger_matches_exchange, run

STOP = 0.02


@pytest.fixture(scope="module")
def stop_config(config):
    data = config.to_dict()
    data.update(exchange="binance", symbol="BTC/USDT", capital=10_000.0)
    data["params"].update(fast=20, slow=100)
    data["risk"]["stop_loss"] = STOP
    return parse_strategy_config(data, "<stop on exchange>")


def orders_of(rig):
    with rig.factory() as s:
        return list(s.query(store.Order).order_by(store.Order.id))


def protection_of(rig):
    with rig.factory() as s:
        position = s.get(store.Position, "main")
        return in_force(s, "main", position.qty, STOP)


def test_the_stop_rests_on_the_exchange_and_follows_the_position(btc, stop_config, tmp_path):
    data = stop_config.to_dict()
    data["risk"]["take_profit"] = 0.03  # no OCO lists here: checked at candle closes, its sale cancels the stop first
    config = parse_strategy_config(data, "<stop and take-profit>")
    with LocalExchange(btc.iloc[:700], symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=2,
                       oco=False) as ex:
        rig = Rig(ex, config, f"sqlite:///{tmp_path / 's.db'}")
        run(rig, 100, 700)
        fills, orders = ledger_matches_exchange(rig)
        open_on_exchange = [o for o in ex.orders if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    stops = [o for o in orders if o.type == OrderType.STOP_MARKET]
    entries = [o for o in orders if o.side == "buy"]
    assert len(entries) >= 3 and len(stops) >= len(entries)
    for entry in entries:  # each entry is protected by a stop placed at its own tick, for all of it
        stop = next(o for o in stops if o.bar_time == entry.bar_time)
        assert stop.amount == pytest.approx(entry.filled, abs=1e-12)
        assert stop.price == pytest.approx(round(entry_price(fills, entry) * (1 - STOP), 2), abs=0.006)
    fired = [o for o in stops if o.status == OrderStatus.FILLED]
    assert fired and all(o.filled == pytest.approx(o.amount, abs=1e-12) for o in fired)
    # each sale of the daemon's own cancelled the stop first
    own_sales = [o for o in orders if o.side == "sell" and o.type == OrderType.MARKET]
    assert own_sales and all(any(st.status == OrderStatus.CANCELED and st.bar_time < o.bar_time for st in stops)
                             for o in own_sales)
    assert len(open_on_exchange) <= 1 and all(o["type"] == "STOP_LOSS" for o in open_on_exchange)
    assert "stop_loss" in {f.reason for f in fills if f.side == "sell"}


def entry_price(fills, order):
    mine = [f for f in fills if f.client_order_id == order.client_order_id]
    return sum(f.amount * f.price for f in mine) / sum(f.amount for f in mine)


def test_a_stop_that_fires_while_the_daemon_is_down_is_booked_at_the_exchanges_price(btc, stop_config, tmp_path):
    url = f"sqlite:///{tmp_path / 'down.db'}"
    with LocalExchange(btc.iloc[:700], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, stop_config, url)
        i = 100
        while protection_of(rig) != InForce.EXCHANGE_STOP:
            rig.step(i)
            i += 1
        rig.engine.close()
        # the daemon is down while the market runs until the stop fires
        while not [o for o in ex.orders if o["type"] == "STOP_LOSS" and o["status"] == "FILLED"]:
            i += 1
            ex.clock.set(ex.candles.open_time(i))
        fired = next(o for o in ex.orders if o["type"] == "STOP_LOSS" and o["status"] == "FILLED")
        restarted = Rig(ex, stop_config, url)
        assert restarted.engine.resolve_pending() is None
        fills, orders = ledger_matches_exchange(restarted)
        stop = next(o for o in orders if o.client_order_id == fired["client_order_id"])
        assert stop.status == OrderStatus.FILLED
        booked = [f for f in fills if f.client_order_id == stop.client_order_id]
        assert [f.price for f in booked] == [t["price"] for t in ex.trades if t["order_id"] == fired["order_id"]]
        assert protection_of(restarted) == InForce.NONE  # flat: the strategy's next target sees it
        run(restarted, i, i + 100)
        ledger_matches_exchange(restarted)


@pytest.mark.slow  # a live session of its own; the default suite keeps the watch that covers a refusal
def test_a_stop_the_exchange_refuses_is_placed_again_and_the_candle_close_check_covers_meanwhile(
        btc, stop_config, tmp_path):
    class RefusingOnce:
        def __init__(self, inner):
            self.inner, self.mode, self.refused = inner, inner.mode, False

        def place_stop(self, cid, amount, stop):
            if not self.refused:
                self.refused = True
                ex.inject("POST /api/v3/order", faults.http_error(400, -2010, "Order type not allowed for this API key."))
            return self.inner.place_stop(cid, amount, stop)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    with LocalExchange(btc.iloc[:500], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'r.db'}", broker_wrapper=RefusingOnce)
        i = 100
        while not [o for o in orders_of(rig) if o.type == OrderType.STOP_MARKET]:
            rig.step(i)
            i += 1
        assert protection_of(rig) == InForce.CANDLE_CLOSE
        rig.step(i)
        assert protection_of(rig) == InForce.EXCHANGE_STOP
        run(rig, i + 1, min(i + 80, 500))
        fills, orders = ledger_matches_exchange(rig)
        with rig.factory() as s:
            assert s.query(store.Event).filter_by(kind="order_rejected").count() == 1
    stops = [o for o in orders if o.type == OrderType.STOP_MARKET]
    assert stops[0].status == OrderStatus.REJECTED and stops[1].status != OrderStatus.REJECTED


@pytest.mark.slow  # the candle-close path is the paper broker's too; the watch test covers this exchange
def test_without_stop_orders_the_stop_is_checked_at_each_candle_close(btc, stop_config, tmp_path):
    with LocalExchange(btc.iloc[:700], symbol="BTC/USDT", balances={"USDT": 10_000.0}, stop_orders=False) as ex:
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'n.db'}")
        run(rig, 100, 700)
        fills, orders = ledger_matches_exchange(rig)
    assert not [o for o in orders if o.type == OrderType.STOP_MARKET]
    assert [o for o in orders if o.reason == "stop_loss" and o.client_order_id.endswith("-s")]


def gapped(btc, config):
    """The candles with one that opens 10% below the first position's stop level, and the
    backtest's exit there."""
    frame = btc.iloc[:700].copy()
    result = run_backtest(frame, config)
    entry = next(f for f in result.fills if f.side == "buy")
    at = frame.index.get_loc(entry.time) + 2
    gap = round(entry.price * (1 - STOP) * 0.9, 2)
    frame.iloc[at, frame.columns.get_loc("open")] = gap
    frame.iloc[at, frame.columns.get_loc("low")] = min(gap, frame["low"].iat[at])
    frame.iloc[at, frame.columns.get_loc("high")] = max(gap, frame["high"].iat[at])
    exit_ = next(f for f in run_backtest(frame, config).fills if f.side == "sell")
    assert exit_.reason == "stop_loss" and exit_.time == frame.index[at]
    return frame, at, gap, exit_.price


def test_a_gap_through_the_stop_exits_at_the_gap_in_backtest_paper_and_live(btc, stop_config, tmp_path):
    frame, at, gap, backtest_price = gapped(btc, stop_config)
    slippage = stop_config.risk.slippage
    assert backtest_price == pytest.approx(gap * (1 - slippage))

    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'paper.db'}"))
    paper = Engine(config=stop_config, goals=None, sessions=factory, broker=PaperBroker("USDT"))
    for i in range(100, at + 2):
        paper.tick(MarketView(bars=frame.iloc[:i], next_open=float(frame["open"].iat[i]), next_time=frame.index[i]))
    with factory() as s:
        paper_exit = next(f for f in store.fills_of(s, "main") if f.side == "sell")
    assert paper_exit.price == backtest_price and paper_exit.reason == "stop_loss"

    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'live.db'}")
        run(rig, 100, at + 2)
        fills, _ = ledger_matches_exchange(rig)
    live_exit = next(f for f in fills if f.side == "sell")
    assert live_exit.reason == "stop_loss" and live_exit.price == gap  # the exchange fills at the open
    assert live_exit.time == frame.index[at].to_pydatetime()
    # within the slippage model the backtest applies to a stop's market fill
    assert abs(live_exit.price - backtest_price) <= gap * slippage + 0.01


def test_status_says_which_protection_is_in_force(btc, stop_config, tmp_path):
    from trader import status

    with LocalExchange(btc.iloc[:400], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'st.db'}")
        i = 100
        while protection_of(rig) != InForce.EXCHANGE_STOP:
            rig.step(i)
            i += 1
        with rig.factory() as s:
            snap = status.snapshot(s, "main")
            stop = store.order_by_client_id(s, snap["protection"]["order"])
    assert snap["protection"]["in_force"] == "exchange_stop"
    assert snap["protection"]["stop_price"] == stop.price and stop.status == OrderStatus.OPEN


def test_without_stop_orders_the_price_watch_sells_between_candle_closes_once(btc, stop_config, tmp_path):
    """The daemon's watch (the ticker every few seconds) sells at market as soon as the price
    reaches the level, under the id the candle's close would use: the close sells nothing more."""
    with LocalExchange(btc.iloc[:500], symbol="BTC/USDT", balances={"USDT": 10_000.0}, stop_orders=False) as ex:
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'w.db'}")
        i = 100
        while True:
            rig.step(i)
            i += 1
            with rig.factory() as s:
                position = s.get(store.Position, "main")
                if position.qty > 0:
                    break
        assert protection_of(rig) == InForce.CANDLE_CLOSE
        level = position.entry_price * (1 - STOP)
        now = pd.Timestamp(ex.clock.now_ms() + 60_000, unit="ms", tz="UTC").to_pydatetime()
        assert rig.engine.protection.watch(lambda: level * 1.001, now) is None  # above the level: nothing
        cid = rig.engine.protection.watch(lambda: level * 0.999, now)
        assert cid is not None and cid.endswith("-s")
        assert rig.engine.protection.watch(lambda: level * 0.99, now) is None  # flat now
        rig.step(i)  # the close of that candle
        fills, orders = ledger_matches_exchange(rig)
    sells = [o for o in orders if o.side == "sell"]
    assert [o.client_order_id for o in sells] == [cid] and sells[0].reason == "stop_loss"


def test_a_stray_order_of_the_book_is_cancelled_at_start(btc, stop_config, tmp_path):
    """An order of this book open on the exchange that the ledger does not hold open (a ledger
    restored from an older backup) is cancelled when the daemon starts; other ids are not ours."""
    with LocalExchange(btc.iloc[:300], symbol="BTC/USDT", balances={"USDT": 10_000.0, "BTC": 1.0}) as ex:
        client = ex.client()
        low = round(ex.current_price() * 0.5, 2)
        client.create_order("BTC/USDT", "market", "sell", 0.5, None, {"clientOrderId": "ht-main-0123abcd-1-p",
                                                                       "stopLossPrice": low})
        client.create_order("BTC/USDT", "market", "sell", 0.1, None, {"clientOrderId": "by-hand-1", "stopLossPrice": low})
        rig = Rig(ex, stop_config, f"sqlite:///{tmp_path / 'stray.db'}")
        assert rig.engine.resolve_pending() is None
        status = {o["client_order_id"]: o["status"] for o in ex.orders}
        with rig.factory() as s:
            events = [e.kind for e in s.query(store.Event)]
    assert status == {"ht-main-0123abcd-1-p": "CANCELED", "by-hand-1": "NEW"}
    assert events.count("stray_order_cancelled") == 1
