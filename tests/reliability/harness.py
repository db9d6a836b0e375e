"""What the reliability tests and benchmarks/chaos.py share: fast-ticking candles, a local
exchange that timestamps every request, the real daemon as a subprocess that can be killed,
the daemon's Service on a driven clock, and the one consistency check that matters: the
ledger against the exchange's own record.

Nothing here changes the daemon: it is driven from outside, through its CLI, its Service
class and the local exchange, exactly as a user or an exchange would drive it.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SYMBOL = "BTC/USDT"
STEP = 1e-5  # the local exchange's LOT_SIZE step
START_USDT = 10_000.0
# recognisable, so that a search of every output can find them (none may appear)
KEY = "RELKEY-7fQ2pLm9ZtXw4Hc8"
SECRET = "RELSECRET-Vb3Nq6Rk1Jd5Ys0e"
UNRESOLVED = ("intent", "unknown", "open")


# -- candles -------------------------------------------------------------------------------


def enable_one_second_candles() -> None:
    """Let the local exchange serve 1-second klines.

    Binance has them ("1s" is in ccxt's binance.timeframes, so the strategy file accepts
    it), but trader/localexchange/market.py's INTERVALS table stops at "1m": its klines
    endpoint answers -1120 "Invalid interval" for 1 s data. Registering the name in this
    process (where the exchange runs) is all it takes; the daemon is not touched.
    """
    from trader.localexchange import market

    market.INTERVALS.setdefault(1000, "1s")


def oscillating_candles(start: pd.Timestamp, n: int, seconds: int, seed: int, period: float = 8.0,
                        amplitude: float = 0.004, noise: float = 0.0005) -> pd.DataFrame:
    """A seeded price path that swings every `period` bars: ma_cross 2/5 flips on it every
    few bars, so the daemon trades often."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    jitter = rng.uniform(0.8, 1.25)  # a different rhythm per seed
    close = 30_000.0 * (1 + amplitude * np.sin(2 * np.pi * t / (period * jitter))) \
        * np.exp(np.cumsum(rng.normal(0.0, noise, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.normal(0.0, noise / 2, (2, n)))
    index = pd.date_range(start, periods=n, freq=f"{seconds}s", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close,
                         "volume": 1.0}, index=index)


def random_walk_candles(start: pd.Timestamp, n: int, seconds: int, seed: int, sigma: float = 0.001) -> pd.DataFrame:
    """A seeded random walk (the soak's month of minutes)."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    index = pd.date_range(start, periods=n, freq=f"{seconds}s", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
                         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close,
                         "volume": 1.0}, index=index)


def realtime_candles(seed: int, history: int = 700, future: int = 3 * 3600) -> pd.DataFrame:
    """1-second candles whose candle number `history` is the one in progress now."""
    now = pd.Timestamp.now(tz="UTC").floor("1s")
    return oscillating_candles(now - pd.Timedelta(seconds=history), history + future, 1, seed)


# -- the local exchange, timed -----------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request as the exchange saw it, with wall-clock times (time.time())."""

    start: float
    end: float
    method: str
    path: str
    status: int | None  # None: no answer (dropped)


def _local_exchange_class():
    from trader.localexchange import LocalExchange

    class TimedExchange(LocalExchange):
        """The local exchange, plus the arrival and answer time of every request: how the
        tests see whether Retry-After and the rate limits were respected."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeline: list[Hit] = []
            self._timeline_lock = threading.Lock()

        def follow_wall_clock(self) -> None:
            # market time = real time, to the millisecond, so the daemon (which schedules on
            # the wall clock) and the exchange agree on which candle has closed
            self.clock.now_ms = lambda: int(time.time() * 1000)  # type: ignore[method-assign]

        def _serve(self, handler, method):  # type: ignore[no-untyped-def]
            started = time.time()
            status: list[int] = []
            answered: list[float] = []
            send = handler.send_response

            def send_response(code, *args):  # type: ignore[no-untyped-def]
                # the answer's time is when it starts to leave: a client may act on it before
                # this thread gets round to noting that it is done
                answered.append(time.time())
                status.append(int(code))
                return send(code, *args)

            handler.send_response = send_response
            try:
                return super()._serve(handler, method)
            finally:
                end = answered[0] if answered else time.time()
                hit = Hit(started, end, method, urlsplit(handler.path).path, status[0] if status else None)
                with self._timeline_lock:
                    self.timeline.append(hit)

        def hits(self) -> list[Hit]:
            with self._timeline_lock:
                return sorted(self.timeline, key=lambda h: h.start)

        def weight(self, hit: Hit) -> int:
            route = self._api.route(hit.method, hit.path)
            return route.weight if route is not None else 1

    return TimedExchange


def timed_exchange(candles: pd.DataFrame, **kwargs: Any):
    """A started TimedExchange (a LocalExchange subclass) on 127.0.0.1."""
    kwargs.setdefault("balances", {"USDT": START_USDT})
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("secret", SECRET)
    return _local_exchange_class()(candles, SYMBOL, **kwargs).start()


def max_weight_per_minute(exchange, hits: list[Hit] | None = None) -> int:
    """The most request weight used in any 60-second window (Binance's limit: 6000)."""
    hits = exchange.hits() if hits is None else hits
    window: deque[tuple[float, int]] = deque()
    total = best = 0
    for hit in hits:
        w = exchange.weight(hit)
        window.append((hit.start, w))
        total += w
        while window[0][0] < hit.start - 60:
            total -= window.popleft()[1]
        best = max(best, total)
    return best


def max_orders_per_10s(hits: list[Hit]) -> int:
    """The most order requests in any 10-second window (Binance's limit: 100)."""
    starts = [h.start for h in hits if h.method == "POST" and h.path == "/api/v3/order"]
    best, lo = 0, 0
    for hi, t in enumerate(starts):
        while starts[lo] < t - 10:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def retry_after_waits(hits: list[Hit], statuses: Iterable[int] = (429, 418, 503)) -> list[tuple[Hit, float]]:
    """For each refused request (with a Retry-After), how long until the next request came."""
    out = []
    hits = sorted(hits, key=lambda h: h.start)
    for i, hit in enumerate(hits):
        if hit.status in statuses:
            later = [h for h in hits[i + 1:] if h.start >= hit.end - 1e-3]
            if later:
                out.append((hit, later[0].start - hit.end))
    return out


# -- files -------------------------------------------------------------------------------------


def strategy_yaml(timeframe: str = "1s", fast: int = 2, slow: int = 5, stake: float = 0.5,
                  capital: float = START_USDT, name: str = "reliability", stop_loss: float | None = None,
                  take_profit: float | None = None) -> str:
    """The daemon's strategy file; `stop_loss`: a stop resting on the exchange while a position
    is open; with `take_profit` too, the two rest as one OCO list."""
    stop = "null" if stop_loss is None else repr(stop_loss)
    take = "null" if take_profit is None else repr(take_profit)
    return (
        f"name: {name}\n"
        "exchange: binance\n"
        f"symbol: {SYMBOL}\n"
        f"timeframe: {timeframe}\n"
        f"capital: {capital}\n"
        "strategy: ma_cross\n"
        f"params: {{fast: {fast}, slow: {slow}, kind: sma}}\n"
        f"risk: {{stake_fraction: {stake}, stop_loss: {stop}, take_profit: {take}, fee: 0.001, slippage: 0.0005}}\n"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that would point the daemon at a
    real exchange, database, model or webhook."""
    prefixes = ("EXCHANGE_", "DATABASE_URL", "TRADER_", "ANTHROPIC_", "PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(extra)
    return env


def live_env(exchange_url: str, data_dir: Path, port: int | None = None, **extra: str) -> dict[str, str]:
    env = clean_env(TRADER_EXCHANGE_URL=exchange_url, TRADER_DATA_DIR=str(data_dir),
                    EXCHANGE_API_KEY=KEY, EXCHANGE_API_SECRET=SECRET, PORT=str(port or free_port()), **extra)
    return env


def trader(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "trader.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def approve_live(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    done = trader(["approve", "--live", "--yes", "--config", str(config)], env)
    if done.returncode != 0:
        raise RuntimeError(f"trader approve failed ({done.returncode}): {done.stderr}")
    return done


# -- the real daemon, as a process -----------------------------------------------------------


class Daemon:
    """`trader run --live --settle 0 --log-json` in a subprocess; its JSON log lines are read
    as they come (and kept, raw, for the secrets search)."""

    def __init__(self, config: Path, env: dict[str, str], log_dir: Path, goals: Path | None = None,
                 settle: float = 0.0, live: bool = True):
        self.started_at = time.time()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / "daemon.stderr"
        self.stdout_path = log_dir / "daemon.stdout"
        args = [PYTHON, "-m", "trader.cli", "run", "--config", str(config),
                "--goals", str(goals or (log_dir / "no-goals.yaml")), "--settle", str(settle), "--log-json",
                "--verbose"]  # APScheduler's "Running job" lines mark when a tick starts
        if live:
            args.insert(4, "--live")
        self._stderr = open(self.stderr_path, "a", encoding="utf-8")
        self._stdout = open(self.stdout_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._stderr,
                                     text=True, bufsize=1)
        self.records: list[dict] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="daemon-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._stdout.write(line)
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "raw", "message": line.rstrip("\n")}
            record["_t"] = time.time()
            with self._cond:
                self.records.append(record)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def mark(self) -> int:
        with self._cond:
            return len(self.records)

    def wait_for(self, match: Callable[[dict], bool], after: int = 0, timeout: float = 60.0,
                 count: int = 1) -> dict | None:
        """The `count`-th record from index `after` on that matches, or None at the timeout
        or when the process ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.records[after:] if match(r)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(min(left, 0.5))

    def wait_event(self, event: str, after: int = 0, timeout: float = 60.0, count: int = 1) -> dict | None:
        return self.wait_for(lambda r: r.get("event") == event, after, timeout, count)

    def kill9(self) -> None:
        """SIGKILL: no handler, no finally, no flush: what a crash or an OOM kill does."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close()

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM, as Railway and Docker stop a service; the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=30)
        self._close()
        return code

    def _close(self) -> None:
        self._reader.join(timeout=10)
        self._stdout.close()
        self._stderr.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


# -- the daemon's Service on a driven clock (in-process) ------------------------------------


class DrivenService:
    """trader.daemon.Service, built as `trader run --live` builds it, against a local exchange
    whose market clock the test moves: one candle per `tick_at`. The scheduler is the only
    part left out; the tick (with its retries and halts) is the daemon's own.

    `stop.wait` is wrapped so the tests see every wait the daemon asks for; with
    `real_waits` it also really waits (to measure Retry-After at the exchange).
    """

    def __init__(self, exchange_url: str, set_clock: Callable[[int], None], config_path: Path,
                 data_dir: Path, real_waits: bool = False, timeout_ms: int | None = None,
                 recv_window_ms: int | None = None):
        from trader.config import load_strategy_config
        from trader.daemon import RunOptions, Service
        from trader.ledger import open_ledger, sessions, store
        from trader.ledger.models import Approval

        self.set_clock = set_clock
        self.url = f"sqlite:///{data_dir / 'trader.db'}"
        config = load_strategy_config(config_path)
        engine = open_ledger(self.url)
        with sessions(engine).begin() as s:  # what `trader approve --live --yes` records
            store.ensure_version(s, config, config_path.read_text(encoding="utf-8"))
            s.add(Approval(kind="live", strategy_version=config.version))
        engine.dispose()
        environ = {"TRADER_EXCHANGE_URL": exchange_url, "TRADER_DATA_DIR": str(data_dir),
                   "EXCHANGE_API_KEY": KEY, "EXCHANGE_API_SECRET": SECRET}
        self.service = Service(RunOptions(config_path=config_path, live=True, database_url=self.url,
                                          settle_seconds=0.0), environ)
        if timeout_ms is not None:
            self.service.adapter.client.timeout = timeout_ms  # ccxt's own request timeout
        if recv_window_ms is not None:  # how long a signed request stays valid at the exchange
            self.service.adapter.client.options["recvWindow"] = recv_window_ms
        self.now_ms = 0
        feed_view = self.service.feed.view
        self.service.feed.view = lambda now=None: feed_view(now=pd.Timestamp(self.now_ms, unit="ms", tz="UTC"))
        self.waits: list[float] = []
        real_wait = self.service.stop.wait

        def wait(seconds: float | None = None) -> bool:
            self.waits.append(float(seconds or 0.0))
            return real_wait(seconds) if real_waits else self.service.stop.is_set()

        self.service.stop.wait = wait  # type: ignore[method-assign]
        self.service.engine.resolve_pending()  # as Service.run does before its first tick

    def tick_at(self, open_ms: int) -> None:
        """The candle opening at `open_ms` is in progress: run the daemon's tick."""
        self.now_ms = open_ms
        self.set_clock(open_ms)
        self.service.tick()

    def settle(self, timeout: float = 30.0) -> None:
        """Reconcile what is open as the next start-up would, really waiting out requests that
        may still reach the exchange (the exchange checks their age on the real clock)."""
        if not self.service.settle_pending(budget=timeout, wait=lambda pause: bool(time.sleep(pause))):
            raise AssertionError(f"orders still in doubt after {timeout:.0f} s")

    def state(self):
        from trader.ledger.models import DaemonState

        with self.service.factory() as s:
            row = s.get(DaemonState, "main")
            return row.state, row.reason, row.last_error

    def close(self) -> None:
        self.service.engine.close()
        self.service.lock.release()


# -- the exchange in its own process (the soak measures the daemon's memory, not its) -------


def _exchange_process(conn, days: float, seed: int, partial_fills: int) -> None:
    frame = minute_frame(days, seed)
    ex = timed_exchange(frame, partial_fills=partial_fills)
    conn.send(ex.base_url)
    while True:
        command, args = conn.recv()
        if command == "stop":
            ex.stop()
            conn.send(None)
            return
        try:
            if command == "set_clock":
                ex.clock.set(args[0])
                result = None
            elif command == "inject":
                ex.inject(*args)
                result = None
            elif command == "applied":
                result = len(ex.faults.applied)
            elif command == "snapshot":
                result = {"orders": ex.orders, "trades": ex.trades, "balances": ex.balances()}
            elif command == "hits":
                result = ex.hits()
            elif command == "forget_hits":
                with ex._timeline_lock:
                    ex.timeline.clear()
                with ex._lock:
                    ex._requests.clear()
                result = None
            else:
                raise ValueError(command)
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 (sent back to the caller)
            conn.send(("error", repr(exc)))


SOAK_START = pd.Timestamp("2024-01-01", tz="UTC")


def minute_frame(days: float, seed: int, warmup: int = 600) -> pd.DataFrame:
    return random_walk_candles(SOAK_START, warmup + int(days * 1440) + 2, 60, seed)


class RemoteExchange:
    """A TimedExchange of 1-minute candles in a child process, steered through a pipe."""

    def __init__(self, days: float, seed: int, partial_fills: int = 1):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_exchange_process, args=(child, days, seed, partial_fills), daemon=True)
        self.proc.start()
        self.base_url = self.conn.recv()

    def call(self, command: str, *args: Any) -> Any:
        self.conn.send((command, args))
        status, result = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"exchange {command}: {result}")
        return result

    def close(self) -> None:
        try:
            self.conn.send(("stop", ()))
            self.conn.recv()
        finally:
            self.proc.join(timeout=10)


# -- the check ---------------------------------------------------------------------------------


@dataclass
class Consistency:
    orders: int = 0  # on the exchange
    trades: int = 0  # on the exchange
    fills: int = 0  # in the ledger
    ledger_orders: Counter = field(default_factory=Counter)  # status -> count
    position: float = 0.0
    exchange_base: float = 0.0
    cash: float = 0.0
    exchange_quote: float = 0.0
    fee_balances: dict = field(default_factory=dict)  # a third fee currency (BNB): ledger's
    exchange_fee_balances: dict = field(default_factory=dict)  # and the exchange's
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(self.ledger_orders.items()))
        return (f"{self.orders} exchange orders, {self.trades} exchange trades, {self.fills} ledger fills; "
                f"ledger orders: {statuses or 'none'}; position {self.position:.8f} vs exchange "
                f"{self.exchange_base:.8f}; cash {self.cash:.6f} vs exchange {self.exchange_quote:.6f}"
                + "".join(f"; {c} {v:.8f} vs exchange {self.exchange_fee_balances.get(c, 0.0):.8f}"
                          for c, v in self.fee_balances.items()))


def ledger_rows(url: str, book: str = "main") -> tuple[list, list, Any, Any]:
    """(orders, fills, position, quote balance) read without migrating or locking anything."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from trader.ledger.models import Balance, Fill, Order, Position

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            orders = list(s.scalars(select(Order).where(Order.book == book).order_by(Order.id)))
            fills = list(s.scalars(select(Fill).where(Fill.book == book).order_by(Fill.id)))
            position = s.get(Position, book)
            cash = s.get(Balance, (book, "USDT"))
            s.expunge_all()
    finally:
        engine.dispose()
    return orders, fills, position, cash


def fee_balance_rows(url: str, book: str = "main") -> tuple[dict[str, float], list[str]]:
    """The ledger's balances of third fee currencies (BNB), and its `fee_balance_adjusted`
    messages: none here, where nothing moves BNB outside the bot, or the ledger was wrong."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from trader.ledger.models import Balance, Event

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            rows = {b.currency: b.total for b in s.scalars(select(Balance).where(Balance.book == book))
                    if b.currency not in ("BTC", "USDT")}
            adjusted = list(s.scalars(select(Event.message).where(Event.kind == "fee_balance_adjusted")))
    finally:
        engine.dispose()
    return rows, adjusted


def check_consistency(url: str, orders_on_exchange: list[dict], trades_on_exchange: list[dict],
                      balances: dict[str, dict[str, float]], *, settled: bool = True) -> Consistency:
    """The ledger against the exchange's own record.

    Always: no client order id twice on the exchange; every exchange order is in the ledger;
    no ledger fill the exchange does not have; no fill twice. When `settled` (no order may be
    in flight): every exchange trade is in the ledger, no order is left intent/unknown/open,
    the position equals the exchange's BTC balance and the cash its USDT balance.
    """
    orders, fills, position, cash = ledger_rows(url)
    out = Consistency(orders=len(orders_on_exchange), trades=len(trades_on_exchange), fills=len(fills))
    out.ledger_orders = Counter(o.status for o in orders)
    problems = out.problems

    cids = Counter(o["client_order_id"] for o in orders_on_exchange)
    problems += [f"client order id {cid} placed {n} times" for cid, n in cids.items() if n > 1]
    by_cid = {o.client_order_id: o for o in orders}
    problems += [f"exchange order {cid} is not in the ledger" for cid in cids if cid not in by_cid]

    fill_ids = Counter(f.trade_id for f in fills)
    problems += [f"trade {tid} booked {n} times" for tid, n in fill_ids.items() if n > 1]
    exchange_ids = {str(t["trade_id"]) for t in trades_on_exchange}
    problems += [f"ledger fill {tid} is not an exchange trade" for tid in fill_ids if tid not in exchange_ids]
    cid_of_order = {o["order_id"]: o["client_order_id"] for o in orders_on_exchange}
    for f in fills:
        trade = next((t for t in trades_on_exchange if str(t["trade_id"]) == f.trade_id), None)
        if trade is not None and cid_of_order.get(trade["order_id"]) != f.client_order_id:
            problems.append(f"fill {f.trade_id} booked under {f.client_order_id}, the exchange says "
                            f"{cid_of_order.get(trade['order_id'])}")

    out.position = position.qty if position is not None else 0.0
    out.cash = cash.free if cash is not None else START_USDT
    out.exchange_base = balances.get("BTC", {}).get("total", 0.0)
    out.exchange_quote = balances.get("USDT", {}).get("total", 0.0)
    if settled:
        missing = sorted(exchange_ids - set(fill_ids), key=int)
        problems += [f"exchange trade {tid} is missing from the ledger" for tid in missing]
        resting = {e["client_order_id"] for e in orders_on_exchange if e["status"] in ("NEW", "PARTIALLY_FILLED")}
        # a protective stop (or OCO leg) rests on the exchange by design: open in both is consistent
        problems += [f"order {o.client_order_id} left {o.status}" for o in orders if o.status in UNRESOLVED
                     and not (o.type in ("stop_market", "take_profit") and o.status == "open"
                              and o.client_order_id in resting)]
        problems += [f"order {cid} open on the exchange, not in the ledger as open" for cid in resting
                     if by_cid.get(cid) is None or by_cid[cid].status != "open"]
        if abs(out.position - out.exchange_base) > STEP / 2:
            problems.append(f"position {out.position!r} != exchange BTC {out.exchange_base!r}")
        if abs(out.cash - out.exchange_quote) > 1e-6:
            problems.append(f"cash {out.cash!r} != exchange USDT {out.exchange_quote!r}")
        # fees paid in BNB: the ledger's BNB is the exchange's to its 8 decimals, kept by the
        # fills alone (a start that had to correct it is a problem too)
        out.fee_balances, adjusted = fee_balance_rows(url)
        third = {f.fee_currency for f in fills} - {"BTC", "USDT"}
        out.exchange_fee_balances = {c: balances.get(c, {}).get("total", 0.0) for c in third | set(out.fee_balances)}
        problems += [f"fees paid in {c} but the ledger keeps no {c} balance" for c in third - set(out.fee_balances)]
        problems += [f"ledger {c} {v!r} != exchange {c} {out.exchange_fee_balances[c]!r}"
                     for c, v in out.fee_balances.items() if abs(v - out.exchange_fee_balances[c]) > 1e-9]
        problems += [f"the ledger's fee balance was corrected at a start: {m}" for m in adjusted]
        for o in orders:
            ex = next((e for e in reversed(orders_on_exchange) if e["client_order_id"] == o.client_order_id), None)
            if ex is not None and abs((o.filled or 0.0) - ex["executed_qty"]) > STEP / 2:
                problems.append(f"order {o.client_order_id}: ledger filled {o.filled} != exchange {ex['executed_qty']}")
            if ex is None and o.status == "filled":
                problems.append(f"order {o.client_order_id} filled in the ledger, unknown to the exchange")
    return out


def check_exchange(url: str, exchange, settled: bool = True) -> Consistency:
    return check_consistency(url, exchange.orders, exchange.trades, exchange.balances(), settled=settled)


def rss_mb() -> float:
    """This process's resident set size now (VmRSS), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def collected_rss_mb() -> float:
    gc.collect()
    return rss_mb()


# -- kill -9 at random points ---------------------------------------------------------------

KILL_MODES = ("order", "tick", "uniform", "startup")


@dataclass
class KillRecord:
    number: int
    mode: str
    seconds: float  # from spawn to SIGKILL
    unresolved: list[tuple[str, str]]  # (client order id, status) the ledger had open at death
    sent: list[str]  # of those, the ones the exchange had received
    problems: list[str]

    @property
    def category(self) -> str:
        if self.sent:
            return "order on the exchange, ledger not told"
        if self.unresolved:
            return "intent committed, never sent"
        return "no order in flight"


class LiveWorld:
    """A local exchange following the wall clock with 1-second candles, a data directory,
    an approved strategy file: everything `trader run --live` needs."""

    def __init__(self, workdir: Path, seed: int, partial_fills: int = 2, future: int = 3 * 3600,
                 strategy: str | None = None, extra_env: dict[str, str] | None = None, fee_mode: str = "quote"):
        enable_one_second_candles()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        # a third-currency fee (BNB) needs some of it on the account
        balances = {"USDT": START_USDT, **({"BNB": 5.0} if fee_mode == "third" else {})}
        self.exchange = timed_exchange(realtime_candles(seed, future=future), partial_fills=partial_fills,
                                       fee_mode=fee_mode, balances=balances)
        self.exchange.follow_wall_clock()
        self.config = self.dir / "strategy.yaml"
        self.config.write_text(strategy or strategy_yaml())
        self.port = free_port()
        self.env = live_env(self.exchange.base_url, self.dir, self.port, **(extra_env or {}))
        self.url = f"sqlite:///{self.dir / 'trader.db'}"
        self.approval = approve_live(self.config, self.env)
        self.daemons: list[Daemon] = []

    def daemon(self, goals: Path | None = None) -> Daemon:
        d = Daemon(self.config, self.env, self.dir / "logs", goals=goals)
        self.daemons.append(d)
        return d

    def check(self, settled: bool = True) -> Consistency:
        return check_exchange(self.url, self.exchange, settled=settled)

    def close(self) -> None:
        for d in self.daemons:
            if d.alive():
                d.kill9()
        self.exchange.stop()


def _is_tick_start(record: dict) -> bool:
    return str(record.get("message", "")).startswith("Running job")


def kill_once(world: LiveWorld, number: int, mode: str, rng: np.random.Generator,
              delay: float | None = None) -> KillRecord:
    """Start the daemon, SIGKILL it at a random point chosen by `mode`, and look at what it left:

    * order: right after an order intent is logged (0-10 ms later): before, during or after
      the order request, before or after the answer is booked;
    * tick: 0-30 ms into one of the first three scheduled ticks (candles, strategy, ledger);
    * uniform: 0-3 s after start-up, wherever that falls;
    * startup: 0.5-2.5 s after spawn (imports, migrations, reconciliation of the last death);
    * protect: right after a protective stop (or OCO list) is placed or cancelled (0-10 ms later);
    * protect_fill: right after the fill of a protective order (a stop or OCO leg) is booked.

    `delay` replaces the random part (seconds), for tests that need one exact point.
    """
    d = world.daemon()
    problems: list[str] = []
    try:
        if mode == "startup":
            time.sleep(rng.uniform(0.5, 2.5) if delay is None else delay)
        else:
            if d.wait_event("started", timeout=90) is None:
                problems.append(f"kill {number}: the daemon did not start: {d.stderr()[-800:]}")
            mark = d.mark()
            if mode == "uniform":
                time.sleep(rng.uniform(0.0, 3.0) if delay is None else delay)
            elif mode == "tick":  # the catch-up tick right after start, or one of the next two
                nth = 1 if delay is not None else int(rng.integers(1, 4))
                if d.wait_for(_is_tick_start, after=mark, timeout=30, count=nth) is None:
                    problems.append(f"kill {number}: no tick within 30 s")
                time.sleep(rng.uniform(0.0, 0.03) if delay is None else delay)
            elif mode == "order":
                if d.wait_event("order_intent", after=mark, timeout=60) is None:
                    problems.append(f"kill {number}: no order within 60 s")
                time.sleep(rng.uniform(0.0, 0.01) if delay is None else delay)
            elif mode == "protect":
                if d.wait_for(lambda r: r.get("event") in ("protection_placed", "protection_cancelled"),
                              after=mark, timeout=60) is None:
                    problems.append(f"kill {number}: no protective stop placed or cancelled within 60 s")
                time.sleep(rng.uniform(0.0, 0.01) if delay is None else delay)
            elif mode == "protect_fill":
                if d.wait_for(lambda r: r.get("event") == "order_filled"
                              and str(r.get("client_order_id", "")).endswith(("-p", "-q")), after=mark, timeout=60) is None:
                    problems.append(f"kill {number}: no protective fill booked within 60 s")
                time.sleep(rng.uniform(0.0, 0.01) if delay is None else delay)
            else:
                raise ValueError(mode)
    finally:
        seconds = time.time() - d.started_at
        d.kill9()
    if "Traceback" in d.stderr():
        problems.append(f"kill {number}: a traceback on stderr: {d.stderr()[-800:]}")
    orders, _, _, _ = ledger_rows(world.url)
    unresolved = [(o.client_order_id, o.status) for o in orders if o.status in UNRESOLVED]
    on_exchange = {o["client_order_id"] for o in world.exchange.orders}
    sent = [cid for cid, _ in unresolved if cid in on_exchange]
    # what must hold at any instant; everything else too when nothing was in flight
    check = world.check(settled=not unresolved)
    problems += [f"kill {number} ({mode}): {p}" for p in check.problems]
    return KillRecord(number, mode, seconds, unresolved, sent, problems)


def settle(world: LiveWorld, ticks: int = 3) -> tuple[int, list[str]]:
    """A clean run after the last kill: start (which reconciles), a few ticks, SIGTERM."""
    d = world.daemon()
    problems = []
    if d.wait_event("started", timeout=90) is None:
        problems.append(f"the final daemon did not start: {d.stderr()[-800:]}")
    elif d.wait_event("tick", timeout=60, count=ticks) is None:
        problems.append(f"the final daemon did not tick {ticks} times")
    code = d.stop()
    if code != 0:
        problems.append(f"the final daemon exited {code} on SIGTERM: {d.stderr()[-800:]}")
    if "Traceback" in d.stderr():
        problems.append(f"a traceback on stderr: {d.stderr()[-800:]}")
    return code, problems


def daemon_state(url: str, book: str = "main") -> tuple[str | None, str | None]:
    """(state, reason) of the book, read without migrating or locking anything."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from trader.ledger.models import DaemonState

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            row = s.get(DaemonState, book)
            return (row.state, row.reason) if row is not None else (None, None)
    finally:
        engine.dispose()
