"""Every exchange fault, injected once on the endpoint where it hurts, against the daemon's
own tick (trader.daemon.Service, live broker, ccxt) on a driven clock: the daemon keeps
running, waits as long as the exchange's Retry-After asks, and ends with the ledger equal to
the exchange's record."""

from __future__ import annotations

import time

import pytest

from trader.ledger import store
from trader.localexchange import faults

from . import harness as H

INSUFFICIENT = faults.http_error(400, -2010, "Account has insufficient balance for requested action.")
CANDLES, ORDER, LOOKUP, BALANCE = "GET /api/v3/klines", "POST /api/v3/order", "GET /api/v3/order", "GET /api/v3/account"

# name: [(endpoint, fault, times), ...], the Retry-After the daemon must wait (if any)
CASES = {
    "latency": ([(CANDLES, faults.latency(0.3), 1)], None),
    "timeout on candles": ([(CANDLES, faults.latency(1.5), 1)], None),  # the client gives up at 1 s
    "429 on candles": ([(CANDLES, faults.rate_limited(retry_after=7), 2)], 7.0),
    "418 on candles": ([(CANDLES, faults.banned(retry_after=120), 1)], 120.0),
    "418 on the balance": ([(BALANCE, faults.banned(retry_after=60), 1)], 60.0),
    "503 on candles": ([(CANDLES, faults.server_error(503), 2)], None),
    "500 on the order": ([(ORDER, faults.server_error(500), 1)], None),
    "maintenance on candles": ([(CANDLES, faults.maintenance(retry_after=30), 1)], 30.0),
    "maintenance on the order": ([(ORDER, faults.maintenance(), 1)], None),
    "504 from a proxy on the order": ([(ORDER, faults.gateway_timeout(), 1)], None),
    "dropped after the order was accepted": ([(ORDER, faults.drop_after_accept(), 1)], None),
    "dropped, then a malformed lookup": ([(ORDER, faults.drop_after_accept(), 1), (LOOKUP, faults.malformed(), 1)], None),
    "malformed candles": ([(CANDLES, faults.malformed(), 1)], None),
    "malformed answer to an accepted order": ([(ORDER, faults.malformed(process=True), 1)], None),
    "clock skew on the order": ([(ORDER, faults.clock_skew(20_000), 1)], None),
    "clock skew on the balance": ([(BALANCE, faults.clock_skew(-5_000), 1)], None),
    "insufficient balance": ([(ORDER, INSUFFICIENT, 1)], None),
}


@pytest.fixture
def rig(btc, tmp_path):
    made = []

    def make(real_waits=False, timeout_ms=1000, stake=0.5):
        exchange = H.timed_exchange(btc.iloc[:400], partial_fills=2)
        config = tmp_path / "strategy.yaml"
        config.write_text(H.strategy_yaml("1h", fast=3, slow=12, stake=stake))
        # a 3 s recvWindow: an order lost on the way is known never to exist 4 s after it was sent
        svc = H.DrivenService(exchange.base_url, exchange.clock.set, config, tmp_path, real_waits=real_waits,
                              timeout_ms=timeout_ms, recv_window_ms=3000)
        made.append((exchange, svc))
        return exchange, svc

    yield make
    for exchange, svc in made:
        svc.close()
        exchange.stop()


def drive(exchange, svc, injections, start=20, after=30, limit=399):
    """Tick from `start`, inject at once, until every injection has been used and `after`
    more candles have passed; then settle what is open, as the next start-up would."""
    ours = [fault for _, fault, times in injections for _ in range(times)]
    for pattern, fault, times in injections:
        exchange.inject(pattern, fault, times)
    used_at, ticks = None, 0
    for i in range(start, limit):
        svc.tick_at(exchange.candles.open_time(i))
        ticks += 1
        if used_at is None and exchange.faults.pending() == 0:
            used_at = i
            svc.settle()  # the next candle is an hour away: an order lost on the way is settled by then
        if used_at is not None and i >= used_at + after:
            break
    assert used_at is not None, "the fault was never triggered"
    assert len(exchange.faults.applied) == len(ours)
    svc.settle()
    return ticks


# the same order left in doubt as "500 on the order", through a proxy: CI's long run only
LONG = {"504 from a proxy on the order"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.long) if n in LONG else n for n in CASES])
def test_each_fault_keeps_the_daemon_running_and_consistent(rig, name):
    injections, retry_after = CASES[name]
    exchange, svc = rig()
    ticks = drive(exchange, svc, injections)
    state, reason, last_error = svc.state()
    assert state == "running", reason
    assert last_error is None  # the last tick went through
    with svc.service.factory() as s:
        assert len(store.equity_of(s, "main")) == ticks  # not one candle skipped
    check = H.check_exchange(svc.url, exchange)
    assert check.ok, check.problems
    assert sum(check.ledger_orders.values()) >= 2
    if retry_after is not None:
        assert svc.waits and min(svc.waits) >= retry_after  # every wait at least what was asked
    if name == "insufficient balance":
        assert check.ledger_orders["rejected"] == 1


def test_retry_after_is_respected_at_the_exchange(rig):
    """The time between a refused request and the daemon's next request, measured by the
    exchange, is at least the Retry-After it was given (429, then a 418 ban)."""
    exchange, svc = rig(real_waits=True)
    for i in range(20, 40):
        svc.tick_at(exchange.candles.open_time(i))
    exchange.inject(CANDLES, faults.rate_limited(retry_after=2.5))
    svc.tick_at(exchange.candles.open_time(40))
    exchange.inject(CANDLES, faults.banned(retry_after=3))
    svc.tick_at(exchange.candles.open_time(41))
    waits = H.retry_after_waits(exchange.hits())
    assert [(hit.status, hit.path) for hit, _ in waits] == [(429, "/api/v3/klines"), (418, "/api/v3/klines")]
    assert waits[0][1] >= 2.5 - 0.01 and waits[1][1] >= 3.0 - 0.01
    assert svc.state()[0] == "running"


def test_retry_after_on_the_order_endpoint_is_respected(rig):
    exchange, svc = rig(real_waits=True)
    exchange.inject(ORDER, faults.rate_limited(retry_after=2))
    i = 20
    while exchange.faults.pending():
        svc.tick_at(exchange.candles.open_time(i))
        i += 1
    svc.tick_at(exchange.candles.open_time(i))  # the next candle closed: the daemon may tick again
    [(hit, gap)] = H.retry_after_waits(exchange.hits(), statuses=(429,))
    assert gap >= 2.0 - 0.01


def test_an_order_request_still_in_flight_is_not_given_up(rig):
    # the client times out after 1 s; the exchange takes 2 s, then places the order
    exchange, svc = rig(timeout_ms=1000, stake=0.4)  # room for two buys: the lost one and its replacement
    exchange.inject(ORDER, faults.latency(2.0))
    i = 20
    while exchange.faults.pending():
        svc.tick_at(exchange.candles.open_time(i))
        i += 1
    for j in range(i, i + 30):  # the next candles: the daemon reconciles and trades on
        svc.tick_at(exchange.candles.open_time(j))
    time.sleep(1.5)  # the slow request has surely landed by now
    svc.settle()
    check = H.check_exchange(svc.url, exchange)
    assert check.ok, check.problems
