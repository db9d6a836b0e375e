"""With a take-profit configured, on an exchange with OCO lists (the local exchange speaks
Binance's orderList/oco), the stop and the take-profit rest on the exchange as one list: both
legs are ledger intents first, one leg filling expires the other and is booked once (also
while the daemon is down), and a candle that rises through the take-profit exits at the limit
price, as the backtester's take-profit does. A protective exit that ends partly filled is
sold again, or guarded again, within the same candle."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.backtest import run_backtest
from trader.config import parse_strategy_config
from trader.domain import OrderStatus, OrderType
from trader.ledger import store
from trader.localexchange import LocalExchange, faults
from trader.protection import InForce, in_force

from .liverig import Rig, ledger_matches_exchange, run

STOP, TAKE = 0.02, 0.03


@pytest.fixture(scope="module")
def oco_config(config):
    data = config.to_dict()
    data.update(exchange="binance", symbol="BTC/USDT", capital=10_000.0)
    data["params"].update(fast=20, slow=100)
    data["risk"].update(stop_loss=STOP, take_profit=TAKE)
    return parse_strategy_config(data, "<oco on exchange>")


def orders_of(rig):
    with rig.factory() as s:
        return list(s.query(store.Order).order_by(store.Order.id))


def protection_of(rig):
    with rig.factory() as s:
        position = s.get(store.Position, "main")
        return in_force(s, "main", position.qty, STOP), position.qty, position.entry_price


def until_protected(rig, i):
    while protection_of(rig)[0] != InForce.EXCHANGE_OCO:
        rig.step(i)
        i += 1
    return i


def test_the_oco_rests_on_the_exchange_and_one_leg_filling_ends_the_other(btc, oco_config, tmp_path):
    with LocalExchange(btc.iloc[:700], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'oco.db'}")
        run(rig, 100, 700)
        fills, orders = ledger_matches_exchange(rig)
        on_exchange = {o["client_order_id"]: o for o in ex.orders}
    entries = [o for o in orders if o.side == "buy"]
    stops = {o.bar_time: o for o in orders if o.type == OrderType.STOP_MARKET}
    takes = {o.bar_time: o for o in orders if o.type == OrderType.TAKE_PROFIT}
    assert len(entries) >= 3 and stops.keys() == takes.keys()
    for entry in entries:  # one list per entry, for all of it, at its levels
        stop, take = stops[entry.bar_time], takes[entry.bar_time]
        assert stop.client_order_id[:-1] == take.client_order_id[:-1] and take.client_order_id.endswith("-q")
        assert stop.amount == take.amount == pytest.approx(entry.filled, abs=1e-12)
        price = entry_price(fills, entry)
        assert take.price == pytest.approx(round(price * (1 + TAKE), 2), abs=0.006)
        assert stop.price == pytest.approx(round(price * (1 - STOP), 2), abs=0.006)
    fired = [o for o in list(stops.values()) + list(takes.values()) if o.status == OrderStatus.FILLED]
    assert {o.type for o in fired} == {OrderType.STOP_MARKET, OrderType.TAKE_PROFIT}
    for leg in fired:  # the other leg of its list expired on the exchange, and in the ledger
        other = (takes if leg.type == OrderType.STOP_MARKET else stops)[leg.bar_time]
        assert other.status == OrderStatus.EXPIRED and on_exchange[other.client_order_id]["status"] == "EXPIRED"
    for take in (o for o in fired if o.type == OrderType.TAKE_PROFIT):  # at the limit, as a maker
        assert {f.price for f in fills if f.client_order_id == take.client_order_id} == {take.price}
    # while a list rests, no take-profit is sold at a candle close
    assert not [o for o in orders if o.reason == "take_profit" and o.type == OrderType.MARKET]
    assert sum(o["status"] in ("NEW", "PARTIALLY_FILLED") for o in on_exchange.values()) in (0, 2)


def entry_price(fills, order):
    mine = [f for f in fills if f.client_order_id == order.client_order_id]
    return sum(f.amount * f.price for f in mine) / sum(f.amount for f in mine)


def risen(btc, config):
    """The candles with one that rises through the first position's take-profit level (its
    open below it, its low above the stop), and the backtest's exit there."""
    frame = btc.iloc[:700].copy()
    entry = next(f for f in run_backtest(frame, config).fills if f.side == "buy")
    at = frame.index.get_loc(entry.time) + 2
    level = entry.price * (1 + TAKE)
    for col, value in (("high", level * 1.01), ("low", max(frame["low"].iat[at], entry.price * (1 - STOP / 2)))):
        frame.iloc[at, frame.columns.get_loc(col)] = round(value, 2)
    exit_ = next(f for f in run_backtest(frame, config).fills if f.side == "sell")
    assert exit_.reason == "take_profit" and exit_.time == frame.index[at]
    return frame, at, exit_.price


def test_a_candle_rising_through_the_take_profit_exits_at_the_limit_live_as_in_the_backtest(btc, oco_config, tmp_path):
    frame, at, backtest_price = risen(btc, oco_config)
    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'tp.db'}")
        run(rig, 100, at + 2)
        fills, orders = ledger_matches_exchange(rig)
    live_exit = next(f for f in fills if f.side == "sell")
    take = next(o for o in orders if o.client_order_id == live_exit.client_order_id)
    assert take.type == OrderType.TAKE_PROFIT and live_exit.reason == "take_profit"
    assert live_exit.price == take.price  # the exchange fills the resting limit at its price
    assert frame.index[at] <= live_exit.time < frame.index[at + 1]
    # the live entry fills at the open, the backtest's at the open plus its slippage: the two
    # limits differ by that slippage, and the tick
    slippage = oco_config.risk.slippage
    assert abs(live_exit.price - backtest_price) <= backtest_price * slippage + 0.01


@pytest.mark.slow  # a live session of its own; the stop's down-time test covers the same settling
def test_a_take_profit_that_fills_while_the_daemon_is_down_is_booked_once_at_the_exchanges_price(
        btc, oco_config, tmp_path):
    url = f"sqlite:///{tmp_path / 'down.db'}"
    frame, at, _ = risen(btc, oco_config)
    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, oco_config, url)
        i = until_protected(rig, 100)
        rig.engine.close()
        while i <= at + 1:  # the daemon is down while the take-profit fills
            ex.clock.set(ex.candles.open_time(i))
            i += 1
        filled = next(o for o in ex.orders if o["type"] == "LIMIT_MAKER")
        assert filled["status"] == "FILLED"
        restarted = Rig(ex, oco_config, url)
        assert restarted.engine.resolve_pending() is None
        fills, orders = ledger_matches_exchange(restarted)
        take = next(o for o in orders if o.client_order_id == filled["client_order_id"])
        booked = [f for f in fills if f.client_order_id == take.client_order_id]
        assert take.status == OrderStatus.FILLED
        assert [f.price for f in booked] == [t["price"] for t in ex.trades if t["order_id"] == filled["order_id"]]
        stop = next(o for o in orders if o.type == OrderType.STOP_MARKET and o.bar_time == take.bar_time)
        assert stop.status == OrderStatus.EXPIRED and stop.filled == 0.0
        assert protection_of(restarted)[0] == InForce.NONE
        run(restarted, i, i + 60)
        ledger_matches_exchange(restarted)


@pytest.mark.parametrize("ticker", ["below the level", "above the level"])
def test_a_take_profit_leg_filled_in_part_is_guarded_again_within_the_candle(btc, oco_config, tmp_path, ticker):
    """The limit leg fills one part per candle here: after the first, the stop leg expired (as on
    Binance) and the rest would be unguarded until the next candle close. The watch (seconds
    later, in the same candle) books the part and sells the rest or places a list for it."""
    frame, at, _ = risen(btc, oco_config)
    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=2) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'part.db'}")
        until_protected(rig, 100)
        ex.clock.set(ex.candles.open_time(at + 1))  # candle `at` closed: one part of the limit filled
        legs = {o["type"]: o for o in ex.orders if o["type"] in ("LIMIT_MAKER", "STOP_LOSS")}
        assert legs["LIMIT_MAKER"]["status"] == "PARTIALLY_FILLED" and legs["STOP_LOSS"]["status"] == "EXPIRED"
        now = pd.Timestamp(ex.clock.now_ms() + 30_000, unit="ms", tz="UTC").to_pydatetime()
        _, _, entry = protection_of(rig)
        above = ticker == "above the level"
        rig.engine.protection.watch(lambda: entry * (1 + TAKE) * 1.001 if above else ex.current_price(), now)
        fills, orders = ledger_matches_exchange(rig)
        kind, qty, _ = protection_of(rig)
        held = qty
        assert (qty > 0) != above
        if qty > 0:  # below the level: a list guards the rest again
            assert kind == InForce.EXCHANGE_OCO
            assert [o.amount for o in orders if o.type == OrderType.STOP_MARKET][-1] == pytest.approx(qty, abs=1e-12)
        else:  # at or above it: the rest was sold at market as a take-profit
            assert {f.reason for f in fills if f.side == "sell"} == {"take_profit"}
            assert [o.type for o in orders if o.side == "sell" and o.filled] == [OrderType.TAKE_PROFIT, OrderType.MARKET]
        rig.step(at + 1)  # the candle's close sells nothing twice
        ledger_matches_exchange(rig)
        assert protection_of(rig)[1] == pytest.approx(held, abs=1e-12)


def test_a_stop_that_triggers_into_a_thin_book_is_finished_within_the_candle(btc, oco_config, tmp_path):
    """The stop leg triggers and fills one part of two, then the rest EXPIREs: the watch sells
    the rest at market (the price is past the level), under the candle's stop-loss id."""
    with LocalExchange(btc.iloc[:900], symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=2) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'thin.db'}")
        i = 100
        while not [o for o in orders_of(rig) if o.side == "buy"]:
            ex.inject("POST /api/v3/orderList/oco", faults.expire(1))  # the list placed next: its stop is thin
            rig.step(i)
            i += 1
        ex.faults.clear()
        assert protection_of(rig)[0] == InForce.EXCHANGE_OCO
        stop = next(o for o in ex.orders if o["type"] == "STOP_LOSS")
        while stop["status"] == "NEW":
            ex.clock.set(ex.candles.open_time(i))
            stop = next(o for o in ex.orders if o["order_id"] == stop["order_id"])
            i += 1
        if stop["status"] != "EXPIRED":
            pytest.skip("the take-profit filled first on these candles")
        assert 0 < stop["executed_qty"] < stop["orig_qty"]
        now = pd.Timestamp(ex.clock.now_ms() + 30_000, unit="ms", tz="UTC").to_pydatetime()
        sold = rig.engine.protection.watch(lambda: stop["price"] or ex.current_price() * 0.5, now)
        fills, orders = ledger_matches_exchange(rig)
        assert sold is not None and sold.endswith("-s")
        assert protection_of(rig)[1] == 0.0
        rig.step(i - 1)
        ledger_matches_exchange(rig)


def test_a_market_exit_that_expires_in_part_is_sold_again_at_once(btc, oco_config, tmp_path):
    """Where no stop rests (an exchange without stop orders), the watch's exit at market
    expires after one part of two: the rest is sold at once under the next numbered id, and
    a repeated look places nothing twice."""
    with LocalExchange(btc.iloc[:500], symbol="BTC/USDT", balances={"USDT": 10_000.0}, partial_fills=2,
                       stop_orders=False) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'short.db'}")
        i = 100
        while protection_of(rig)[1] <= 0:
            rig.step(i)
            i += 1
        _, qty, entry = protection_of(rig)
        level = entry * (1 - STOP)
        now = pd.Timestamp(ex.clock.now_ms() + 60_000, unit="ms", tz="UTC").to_pydatetime()
        ex.inject("POST /api/v3/order", faults.expire(1))
        cid = rig.engine.protection.watch(lambda: level * 0.999, now)
        assert cid is not None and cid.endswith("-s1")
        assert rig.engine.protection.watch(lambda: level * 0.99, now) is None  # flat now
        fills, orders = ledger_matches_exchange(rig)
        sells = [o for o in orders if o.side == "sell"]
        assert [o.client_order_id for o in sells] == [cid[:-1], cid]
        assert sells[0].filled < sells[0].amount and sum(o.filled for o in sells) == pytest.approx(qty, abs=1e-12)
        assert protection_of(rig)[1] == 0.0
        rig.step(i)  # the candle's close sells nothing more
        assert [o.client_order_id for o in orders_of(rig) if o.side == "sell"] == [cid[:-1], cid]


def test_status_says_the_stop_and_the_take_profit_rest_on_the_exchange(btc, oco_config, tmp_path):
    from trader import status

    with LocalExchange(btc.iloc[:400], symbol="BTC/USDT", balances={"USDT": 10_000.0}) as ex:
        rig = Rig(ex, oco_config, f"sqlite:///{tmp_path / 'st.db'}")
        until_protected(rig, 100)
        with rig.factory() as s:
            guard = status.snapshot(s, "main")["protection"]
            stop = store.order_by_client_id(s, guard["order"])
            take = store.order_by_client_id(s, guard["take_profit_order"])
    assert guard["in_force"] == "exchange_oco" and guard["take_profit"] == "exchange"
    assert (guard["stop_price"], guard["take_profit_price"]) == (stop.price, take.price)
    assert stop.status == take.status == OrderStatus.OPEN and stop.price < take.price
