"""/status tells the truth at every moment (issue 12, item 12): right after a paper buy it
shows the cash that buy left (not the cash at the close before it), and while the ledger
cannot be written (a full disk) it says so, with /health at 503, until a tick writes again.

The daemon's own Service.run (health server, real HTTP on 127.0.0.1) on a driven clock: the
test's `drive` moves the local exchange's market one candle at a time and runs the tick."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import event

from trader.daemon import RunOptions, Service
from trader.ledger import store

from . import harness as H
from .test_ledger_damage import get


def test_status_after_a_paper_buy_and_during_a_full_disk(btc, tmp_path):
    exchange = H.timed_exchange(btc.iloc[:300])
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml("1h", fast=2, slow=5, stake=0.5))
    port = H.free_port()
    market = {"ms": exchange.candles.open_time(20)}
    service = Service(RunOptions(config_path=config, database_url=f"sqlite:///{tmp_path / 'trader.db'}", port=port,
                                 settle_seconds=0.0),
                      {"TRADER_EXCHANGE_URL": exchange.base_url, "TRADER_DATA_DIR": str(tmp_path)},
                      clock=lambda: pd.Timestamp(market["ms"], unit="ms", tz="UTC").to_pydatetime())
    ledger = service.factory.kw["bind"]
    limit = {"pages": None}

    @event.listens_for(ledger, "connect")
    def _disk(dbapi_connection, _record):  # SQLite's own SQLITE_FULL, as a full disk gives it
        if limit["pages"] is not None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    seen: dict = {"buys": 0}

    def tick_at(i: int) -> None:
        market["ms"] = exchange.candles.open_time(i)
        exchange.clock.set(market["ms"])
        service.tick()

    def drive() -> None:
        i = 20
        while seen["buys"] < 2 and i < 200:  # every tick: /status against the ledger's own rows
            before = get(port, "/status")[1]
            tick_at(i)
            code, status = get(port, "/status")
            with service.factory() as s:
                cash = s.get(store.Balance, ("main", "USDT")).free
                qty = s.get(store.Position, "main").qty
            assert code == 200 and status["cash"] == cash and status["position"]["qty"] == qty, (i, status)
            if qty > before["position"]["qty"]:
                seen["buys"] += 1
                assert status["cash"] < before["cash"], (before, status)  # what the buy spent
            if status["equity"] is not None:
                price = btc["close"].iloc[i - 1]  # the last closed candle
                assert abs(status["equity"] - (cash + qty * price)) < 1e-6 * status["equity"], status
            i += 1
        assert get(port, "/health")[0] == 200
        # a full disk: no page may be added any more
        with ledger.connect() as c:
            limit["pages"] = c.exec_driver_sql("PRAGMA page_count").scalar()
        ledger.dispose()
        for i in range(i, i + 60):
            tick_at(i)
            if service.ledger.write_error:
                break
        code, status = get(port, "/status")
        assert "database or disk is full" in (status["last_error"] or ""), status
        assert status["ledger"]["writable"] is False and status["state"] == "running"
        code, health = get(port, "/health")
        assert code == 503 and "database or disk is full" in health["reason"], health
        limit["pages"] = None  # space again
        ledger.dispose()
        tick_at(i + 1)
        code, status = get(port, "/status")
        assert status["last_error"] is None and status["ledger"]["writable"] is True, status
        assert get(port, "/health")[0] == 200

    try:
        assert service.run(drive=drive) == 0
    finally:
        exchange.stop()
    assert seen["buys"] == 2
