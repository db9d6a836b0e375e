"""When the daemon ticks: a catch-up tick at start, then every candle close plus the settle
delay, never later, never two at once. On a driven clock (the daemon's own job and trigger,
the local exchange's clock moved by the test) and with the real scheduler against the local
exchange following the wall clock, where the tick times are read off the exchange's record
of the candle requests."""

from __future__ import annotations

import math
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from trader.daemon import RunOptions, Service
from trader.ledger import store
from trader.localexchange import LocalExchange, faults
from trader.schedule import CandleCloseTrigger, tick_until_current

from ..conftest import STRATEGY_YAML
from ..reliability import harness as H

UTC = timezone.utc
START = datetime(2024, 3, 5, 19, 51, 25, tzinfo=UTC)  # a daemon started at 19:51:25


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2024-03-05T{text}+00:00")


@pytest.fixture
def driven(btc, tmp_path):
    """The daemon's Service on 1-hour candles, the exchange's clock at START."""
    frame = btc.iloc[:720].copy()
    frame.index = frame.index + (pd.Timestamp(START).floor("h") - frame.index[700])  # candle 700 in progress
    config = tmp_path / "strategy.yaml"
    config.write_text(STRATEGY_YAML.read_text().replace("exchange: coinbase", "exchange: binance")
                      .replace("symbol: BTC/USD", "symbol: BTC/USDT"))
    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}) as exchange:
        environ = {"TRADER_EXCHANGE_URL": exchange.base_url, "TRADER_DATA_DIR": str(tmp_path)}
        service = Service(RunOptions(config_path=config, database_url=f"sqlite:///{tmp_path / 'trader.db'}",
                                     settle_seconds=5.0), environ)
        now = {"t": START}
        service.clock = lambda: now["t"]  # the tick sees the driven clock
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.start(paused=True)  # jobs get their run times; nothing runs
        try:
            yield service, exchange, now, scheduler
        finally:
            scheduler.shutdown(wait=False)
            service.engine.close()
            service.lock.release()


def processed_bars(service) -> list[datetime]:
    with service.factory() as s:
        return [p.time.replace(tzinfo=UTC) for p in store.equity_of(s, "main")]


def test_the_tick_job_is_one_non_overlapping_job_caught_up_at_start(driven):
    service, _, _, scheduler = driven
    job = service.add_jobs(scheduler, START)
    assert job.id == "tick" and job.func is tick_until_current and job.args[0] == service.tick
    # never two ticks at once, missed runs folded into one, a late run still runs within half a candle
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 1800)
    assert isinstance(job.trigger, CandleCloseTrigger) and job.next_run_time == START
    assert [j.id for j in scheduler.get_jobs()] == ["tick"]  # no goals file: no review job


def test_ticks_fire_at_every_close_plus_settle_after_a_catch_up(driven):
    service, exchange, now, scheduler = driven
    job = service.add_jobs(scheduler, START)
    fired, when = [], job.next_run_time
    for _ in range(4):
        fired.append(when)
        now["t"] = when
        exchange.clock.set(when)
        service.tick()
        when = job.trigger.get_next_fire_time(when, when + timedelta(seconds=1))
    # the catch-up at start, then 5 s after every close: not 20:51:25, 21:51:25, ...
    assert fired == [START, at("20:00:05"), at("21:00:05"), at("22:00:05")]
    # each tick decides on the candle that has just closed
    assert processed_bars(service) == [at("18:00:00"), at("19:00:00"), at("20:00:00"), at("21:00:00")]


def test_a_tick_slower_than_a_candle_is_followed_at_once_by_the_one_it_held_up(driven):
    service, exchange, now, scheduler = driven
    job = service.add_jobs(scheduler, START)
    slow = [timedelta(minutes=61, seconds=20)]  # the catch-up tick's exchange hangs past the 20:00 close

    def tick():
        exchange.clock.set(now["t"])
        service.tick()
        now["t"] += slow.pop() if slow else timedelta(milliseconds=300)

    ran = tick_until_current(tick, job.trigger, lambda: now["t"], service.stop.is_set)
    assert ran == 2 and now["t"] == at("20:52:45.3")  # started 19:51:25, back at 20:52:45, ticked again
    # the 19:00 candle decided when the slow tick ended; else never (21:00:05 decides the 20:00 one)
    assert processed_bars(service) == [at("18:00:00"), at("19:00:00")]
    assert job.trigger.get_next_fire_time(START, START) == at("20:00:05")


@pytest.mark.parametrize("timeframe, settle, start, expected", [
    (60, 0.5, "19:51:25.7", ["19:52:00.5", "19:53:00.5"]),
    (300, 5, "19:59:59", ["20:00:05", "20:05:05"]),
    (14400, 5, "19:51:25", ["20:00:05", "2024-03-06T00:00:05"]),
    (86400, 30, "19:51:25", ["2024-03-06T00:00:30", "2024-03-07T00:00:30"]),
    (7 * 86400, 5, "19:51:25", ["2024-03-11T00:00:05", "2024-03-18T00:00:05"]),  # weeks start on Monday
])
def test_the_grid_of_each_timeframe(timeframe, settle, start, expected):
    trigger = CandleCloseTrigger(timeframe, settle)
    first = at(start)
    second = trigger.get_next_fire_time(first, first)  # after the catch-up run at `first`
    third = trigger.get_next_fire_time(second, second)
    want = [datetime.fromisoformat(e if "T" in e else f"2024-03-05T{e}").replace(tzinfo=UTC) for e in expected]
    assert [second, third] == want


# -- the real scheduler, against the local exchange on the wall clock --------------------------


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def klines(exchange) -> list[H.Hit]:
    return [h for h in exchange.hits() if h.path == "/api/v3/klines"]


def run_daemon(tmp_path, exchange, timeframe: str, settle: float, until) -> tuple[list[H.Hit], list[datetime]]:
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml(timeframe))
    env = H.clean_env(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(H.free_port()))
    daemon = H.Daemon(config, env, tmp_path / "logs", settle=settle, live=False)
    try:
        assert daemon.wait_event("started", timeout=90) is not None, daemon.stderr()
        until(daemon)
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        if daemon.alive():
            daemon.kill9()
    with sqlite3.connect(tmp_path / "trader.db") as db:
        bars = [datetime.fromisoformat(t).replace(tzinfo=UTC) for (t,) in
                db.execute("SELECT time FROM equity_points WHERE book = 'main' ORDER BY time")]
    return klines(exchange), bars


def test_real_scheduler_one_minute_candles_tick_at_close_plus_settle(tmp_path):
    """The settle delay is picked so that a close + settle falls a few seconds after start:
    the tick after the catch-up must come then, not a minute after the catch-up."""
    now = pd.Timestamp.now(tz="UTC")
    candles = H.oscillating_candles(now.floor("min") - pd.Timedelta(minutes=700), 730, 60, seed=3)
    exchange = H.timed_exchange(candles)
    exchange.follow_wall_clock()
    due = round(time.time() + 7.0, 1)  # start-up takes a few seconds
    settle = round(due % 60, 1)  # so that a minute's close + settle is `due`
    try:
        hits, _ = run_daemon(tmp_path, exchange, "1m", settle,
                             lambda d: wait_until(lambda: len(klines(exchange)) >= 2, timeout=90))
    finally:
        exchange.stop()
    catch_up, aligned = hits[0], hits[1]
    if catch_up.start > due:  # a slow start-up (a loaded machine) missed it: the next minute's, then
        due += 60 * math.ceil((catch_up.start - due) / 60)
    assert due - 0.01 <= aligned.start < due + 0.5, aligned.start - due  # not a minute after the catch-up


def test_real_scheduler_a_slow_tick_neither_overlaps_nor_loses_a_candle(tmp_path):
    """1-second candles, settle 0.5 s; one candle request answers 1.4 s late, so that tick
    runs past the next close + settle. No second tick may start beside it, and the candle
    that closed meanwhile is decided as soon as it ends (not skipped, not a candle late)."""
    H.enable_one_second_candles()
    exchange = H.timed_exchange(H.realtime_candles(seed=4, future=600))
    exchange.follow_wall_clock()

    def drive(daemon):
        assert wait_until(lambda: len(klines(exchange)) >= 2, timeout=30)
        exchange.inject("GET /api/v3/klines", faults.latency(1.4), times=1)
        n = len(klines(exchange))
        assert wait_until(lambda: len(klines(exchange)) >= n + 4, timeout=30)

    try:
        hits, bars = run_daemon(tmp_path, exchange, "1s", 0.5, drive)
    finally:
        exchange.stop()
    for before, after in zip(hits, hits[1:]):
        assert after.start >= before.end - 0.005, "two ticks ran at once"
    slow = max(range(len(hits)), key=lambda i: hits[i].end - hits[i].start)
    assert hits[slow].end - hits[slow].start >= 1.4
    assert hits[slow + 1].start - hits[slow].end < 0.3  # the held-up candle at once
    on_grid = [h.start for i, h in enumerate(hits) if i not in (0, slow + 1)]  # not the catch-ups
    late = [round((t - 0.5) % 1.0, 3) for t in on_grid if (t - 0.5) % 1.0 > 0.35]
    assert late == []  # every other tick within 0.35 s of close + settle
    seconds = [b.timestamp() for b in bars]
    assert seconds == [seconds[0] + i for i in range(len(seconds))]  # every candle decided, none twice
    assert len(seconds) >= 5
