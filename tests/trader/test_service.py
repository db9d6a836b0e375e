"""The service as it runs 24/7: scheduled ticks against an exchange (the local one, speaking
Binance's API to ccxt), editing the strategy file while it runs, errors, SIGTERM, health."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest

from trader.daemon import RunOptions, Service
from trader.ledger import open_ledger, sessions, store
from trader.localexchange import LocalExchange, faults

from ..conftest import ROOT, STRATEGY_YAML

KEY, SECRET = "svc-key-Hq2Lm9Zt", "svc-secret-Pw7Xc4Rb"


def now_candles(btc: pd.DataFrame, in_progress: int) -> pd.DataFrame:
    """Real candles moved in time so that candle `in_progress` is the one in progress now."""
    frame = btc.iloc[: in_progress + 1].copy()
    frame.index = frame.index + (pd.Timestamp.now(tz="UTC").floor("h") - frame.index[in_progress])
    return frame


@pytest.fixture
def exchange(btc):
    frame = now_candles(btc, 700)
    with LocalExchange(frame, symbol="BTC/USDT", balances={"USDT": 10_000.0}, api_key=KEY, secret=SECRET) as ex:
        ex.clock.set(pd.Timestamp.now(tz="UTC"))
        yield ex


@pytest.fixture
def strategy_file(tmp_path):
    path = tmp_path / "strategy.yaml"
    path.write_text(STRATEGY_YAML.read_text().replace("exchange: coinbase", "exchange: binance")
                    .replace("symbol: BTC/USD", "symbol: BTC/USDT"))
    return path


def make_service(exchange, strategy_file, tmp_path, live=False, goals=None):
    environ = {"TRADER_EXCHANGE_URL": exchange.base_url, "TRADER_DATA_DIR": str(tmp_path)}
    if live:
        environ.update(EXCHANGE_API_KEY=KEY, EXCHANGE_API_SECRET=SECRET)
    options = RunOptions(config_path=strategy_file, goals_path=goals, live=live,
                         database_url=f"sqlite:///{tmp_path / 'trader.db'}")
    return Service(options, environ)


def events(service, kind):
    with service.factory() as s:
        return [e.message for e in s.query(store.Event).filter_by(kind=kind)]


def test_a_tick_trades_on_paper_from_the_exchange_feed(exchange, strategy_file, tmp_path):
    service = make_service(exchange, strategy_file, tmp_path)
    service.tick()
    service.tick()  # the same candle again: skipped, nothing doubled
    with service.factory() as s:
        points = store.equity_of(s, "main")
        state = s.get(store.DaemonState, "main")
    assert len(points) == 1 and state.mode == "paper" and state.last_error is None
    # the bar processed is the one that closed last: it opened an hour before the current one
    assert points[0].time == (pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)).to_pydatetime()
    assert exchange.orders == []  # paper never touches the exchange's order book


def test_editing_the_file_while_running(exchange, strategy_file, tmp_path):
    service = make_service(exchange, strategy_file, tmp_path)
    first = service.config.version
    strategy_file.write_text(strategy_file.read_text().replace("fast: 20", "fast: [oops"))
    service.tick()
    assert service.config.version == first
    (rejected,) = events(service, "config_rejected")
    assert "YAML syntax error" in rejected and str(strategy_file) in rejected
    strategy_file.write_text(strategy_file.read_text().replace("fast: [oops", "fast: 12"))
    service.tick()
    assert service.config.version != first and service.config.params.fast == 12
    (changed,) = events(service, "config_changed")
    assert first in changed and service.config.version in changed
    with service.factory() as s:
        assert s.get(store.DaemonState, "main").strategy_version == service.config.version


def test_live_edit_needs_a_new_approval_before_trading(exchange, strategy_file, tmp_path):
    from trader.config import load_strategy_config
    from trader.ledger.models import Approval

    config = load_strategy_config(strategy_file)
    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'trader.db'}"))
    with factory.begin() as s:
        store.ensure_version(s, config)
        s.add(Approval(kind="live", strategy_version=config.version))
    service = make_service(exchange, strategy_file, tmp_path, live=True)
    strategy_file.write_text(strategy_file.read_text().replace("fast: 20", "fast: 6").replace("slow: 50", "slow: 30"))
    service.tick()
    assert service.engine.trading_paused and "approve --live" in service.engine.trading_paused
    assert events(service, "awaiting_approval")
    assert exchange.orders == []


def test_temporary_errors_are_retried_with_backoff(exchange, strategy_file, tmp_path, monkeypatch):
    service = make_service(exchange, strategy_file, tmp_path)
    waits = []
    monkeypatch.setattr(service.stop, "wait", lambda seconds: waits.append(seconds) or False)
    exchange.inject("GET /api/v3/klines", faults.rate_limited(retry_after=7), times=2)
    service.tick()
    with service.factory() as s:
        assert len(store.equity_of(s, "main")) == 1
        assert s.get(store.DaemonState, "main").last_error is None
    assert waits == [7.0, 7.0]  # the exchange's Retry-After, not less


def test_an_operational_error_halts(exchange, strategy_file, tmp_path):
    service = make_service(exchange, strategy_file, tmp_path)
    exchange.inject("GET /api/v3/klines", faults.http_error(400, -1121, "Invalid symbol."), times=1)
    service.tick()
    with service.factory() as s:
        state = s.get(store.DaemonState, "main")
    assert state.state == "halted" and "OperationalExchangeError" in state.reason


def test_health_before_the_first_tick_says_why_none_came(strategy_file, tmp_path, monkeypatch):
    from trader.status import health

    port = free_port()  # nobody listens there: the exchange is unreachable
    environ = {"TRADER_EXCHANGE_URL": f"http://127.0.0.1:{port}", "TRADER_DATA_DIR": str(tmp_path)}
    service = Service(RunOptions(config_path=strategy_file, database_url=f"sqlite:///{tmp_path / 'trader.db'}"),
                      environ)
    monkeypatch.setattr(service.stop, "wait", lambda seconds: False)  # the retries without the waiting
    try:
        service.tick()
        with service.factory() as s:
            ok, reason = health(s, "main", 3600)
    finally:
        service.engine.close()
        service.lock.release()
    assert not ok and reason.startswith("no tick yet; last error: ") and "NetworkError" in reason


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_during_a_tick_finishes_it_and_exits_0(exchange, strategy_file, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "DATABASE_URL"))}
    env.update(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(port),
               EXCHANGE_API_KEY=KEY, EXCHANGE_API_SECRET=SECRET)
    exchange.inject("GET /api/v3/klines", faults.latency(4.0), times=1)
    proc = subprocess.Popen([sys.executable, "-m", "trader.cli", "run", "--config", str(strategy_file),
                             "--goals", str(tmp_path / "none.yaml"), "--log-json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        # the first tick starts right after "started"; the exchange holds its candles for 4 s
        while not seen or seen[-1].get("event") != "started":
            line = proc.stdout.readline()
            assert line, proc.communicate()
            seen.append(json.loads(line))
        time.sleep(1.0)
        # the tick is waiting for candles; health is served meanwhile and changes nothing
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 503 and "no tick yet" in health.json()["reason"]
        assert httpx.post(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 405
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = seen + [json.loads(line) for line in out.splitlines()]
    kinds = [line.get("event") for line in lines]
    assert kinds.index("stopping") < kinds.index("tick") < kinds.index("stopped")
    # no INFO lines of alembic's migrations or APScheduler's jobs without --verbose
    assert [line for line in lines if line["level"] == "INFO" and not line["logger"].startswith("trader")] == []
    for secret in (KEY, SECRET):
        assert secret not in out and secret not in err and secret not in json.dumps(seen)
    factory = sessions(open_ledger(f"sqlite:///{tmp_path / 'trader.db'}"))
    with factory() as s:
        assert len(store.equity_of(s, "main")) == 1  # the interrupted tick completed
        assert [e.kind for e in s.query(store.Event).order_by(store.Event.id)][-1] == "stopped"
        assert not store.unresolved_orders(s, "main")


def test_health_and_status_while_running(exchange, strategy_file, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "DATABASE_URL"))}
    env.update(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "trader.cli", "run", "--config", str(strategy_file),
                             "--goals", str(tmp_path / "none.yaml"), "--log-text"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=5).json()
        assert status["mode"] == "paper" and status["state"] == "running" and status["equity"] == 10_000.0
        halted = subprocess.run([sys.executable, "-m", "trader.cli", "halt", "--reason", "test"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60)
        assert halted.returncode == 0, halted.stderr
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 503 and "halted: test" in health.json()["reason"]
        alive = json.loads(status_cli(env, "--json").stdout)["daemon"]
        assert alive["alive"] is True and alive["holder"] == f"pid {proc.pid} on {socket.gethostname()}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    stopped = time.time()
    gone = json.loads(status_cli(env, "--json").stdout)
    assert gone["daemon"]["alive"] is False and gone["last_event"]["message"] == "stopped by signal"
    seen = pd.Timestamp(gone["daemon"]["last_seen"]).timestamp()
    assert stopped - 10 < seen <= stopped  # when it stopped
    table = status_cli(env).stdout
    assert "not running, last seen" in table and "no daemon is running" in table


def status_cli(env, *args):
    done = subprocess.run([sys.executable, "-m", "trader.cli", "status", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def test_a_second_daemon_on_the_same_ledger_refuses_to_start(exchange, strategy_file, tmp_path):
    from trader.errors import InputError

    first = make_service(exchange, strategy_file, tmp_path)
    with pytest.raises(InputError, match="another daemon is already trading book 'main'"):
        make_service(exchange, strategy_file, tmp_path)
    first.lock.release()
    make_service(exchange, strategy_file, tmp_path).lock.release()


def test_a_halt_reaches_the_webhook_without_the_keys(exchange, strategy_file, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXCHANGE_", "DATABASE_URL"))}
    env.update(TRADER_EXCHANGE_URL=exchange.base_url, TRADER_DATA_DIR=str(tmp_path), PORT=str(free_port()),
               EXCHANGE_API_KEY=KEY, EXCHANGE_API_SECRET=SECRET,
               TRADER_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook")
    exchange.inject("GET /api/v3/klines", faults.http_error(400, -1121, "Invalid symbol."), times=1)
    proc = subprocess.Popen([sys.executable, "-m", "trader.cli", "run", "--config", str(strategy_file),
                             "--goals", str(tmp_path / "none.yaml"), "--log-json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(r.get("event") == "halted" for r in received):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        hook.shutdown()
    halted = next(r for r in received if r.get("event") == "halted")
    assert "HALTED" in halted["message"] and "OperationalExchangeError" in halted["message"]
    assert KEY not in json.dumps(received) and SECRET not in json.dumps(received)


def test_a_review_on_a_refused_edit_is_skipped_in_one_line_naming_the_field(exchange, strategy_file, tmp_path,
                                                                              caplog):
    goals = tmp_path / "goals.yaml"
    goals.write_text((ROOT / "config" / "goals.yaml").read_text().replace("lookback_days: 90", "lookback_days: 10"))
    service = make_service(exchange, strategy_file, tmp_path, goals=goals)
    version = service.config.version
    strategy_file.write_text(strategy_file.read_text().replace("fast: 20", "fast: twenty"))
    service.tick()  # the edit is refused: the old version trades on
    with caplog.at_level("INFO", logger="trader.daemon"):
        service.review()
    (skipped,) = events(service, "review_skipped")
    assert str(strategy_file) in skipped and "params.fast" in skipped and "twenty" in skipped
    assert f"keeps trading version {version}" in skipped and "once this is fixed" in skipped
    assert events(service, "review_failed") == []
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "review_skipped"]
    assert record.exc_info is None and "\n" not in record.getMessage()  # one line, no traceback
    assert service.review_problem == skipped
