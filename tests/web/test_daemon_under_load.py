"""The daemon itself (a real process, its real scheduler, 1-second candles from the local
exchange) while its dashboard port is hammered: 1,000 event streams, 200 idle sockets, a
slowloris, oversized headers, path traversal and bad tokens. The ticks must stay on the
candle grid and /health must answer throughout (slow)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from ..reliability import harness as H
from ..trader.test_schedule import klines, wait_until

pytestmark = pytest.mark.slow


def _hostile(port: int, stop: threading.Event, answers: dict) -> None:
    """Everything at once, then keep poking until told to stop."""
    held = []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET /events?after=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        held.append(slow)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, trust_env=False) as c:
            while not stop.is_set():
                answers["big"] = c.get("/health", headers={"X-Big": "x" * 70_000}).status_code
                answers["traversal"] = c.get("/static/..%2f..%2fpyproject.toml").status_code
                answers["token"] = c.post("/api/control/halt", headers={"Authorization": "Bearer wrong"}).status_code
                started = time.monotonic()
                answers.setdefault("health", []).append((c.get("/health").status_code, time.monotonic() - started))
                time.sleep(0.2)
    finally:
        answers["streams_open"] = len(held)
        for s in held:
            s.close()


def test_ticks_stay_on_the_candle_grid_while_the_dashboard_is_hammered(tmp_path):
    H.enable_one_second_candles()
    exchange = H.timed_exchange(H.realtime_candles(seed=5, future=900))
    exchange.follow_wall_clock()
    stop, answers = threading.Event(), {}

    port = H.free_port()
    config = tmp_path / "strategy.yaml"
    config.write_text(H.strategy_yaml("1s"))
    env = H.clean_env(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(port))
    daemon = H.Daemon(config, env, tmp_path / "logs", settle=0.5, live=False)
    try:
        assert daemon.wait_event("started", timeout=90) is not None, daemon.stderr()
        assert wait_until(lambda: len(klines(exchange)) >= 2, timeout=60)
        attacker = threading.Thread(target=_hostile, args=(port, stop, answers), daemon=True)
        attacker.start()
        assert wait_until(lambda: len(answers.get("health", [])) >= 3, timeout=120), answers
        answers["first_tick_under_load"] = len(klines(exchange))
        time.sleep(8.0)  # eight candles with every socket held open
        stop.set()
        attacker.join(60)
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        stop.set()
        if daemon.alive():
            daemon.kill9()
        exchange.stop()
    hits = klines(exchange)
    under_load = [h.start for h in hits[answers["first_tick_under_load"]:]]
    assert len(under_load) >= 6, len(under_load)  # a tick per candle, none lost
    late = [round((t - 0.5) % 1.0, 3) for t in under_load if (t - 0.5) % 1.0 > 0.35]
    assert late == [], late  # each within 0.35 s of close + settle, as without load
    assert answers["streams_open"] == 1201
    assert answers["big"] == 431 and answers["traversal"] == 404 and answers["token"] in (401, 403)
    # every look answered, in time for a platform's health check (Railway waits far longer); the
    # first ones come while the 1,200 sockets are being accepted (1.5 s at most seen here, on a
    # loaded 2-core machine; 0.4-0.8 s once they are open)
    assert all(code == 200 and seconds < 3.0 for code, seconds in answers["health"]), answers["health"]
